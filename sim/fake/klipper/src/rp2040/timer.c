// rp2040/timer.c - stand-in source of the fake Klipper (kflash simulator); never compiled
