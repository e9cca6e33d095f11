// linux/console.c - stand-in source of the fake Klipper (kflash simulator); never compiled
