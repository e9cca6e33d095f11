// rp2040/usbserial.c - stand-in source of the fake Klipper (kflash simulator); never compiled
