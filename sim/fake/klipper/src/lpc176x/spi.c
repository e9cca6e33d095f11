// lpc176x/spi.c - stand-in source of the fake Klipper (kflash simulator); never compiled
