// generic/usb_cdc.c - stand-in source of the fake Klipper (kflash simulator); never compiled
