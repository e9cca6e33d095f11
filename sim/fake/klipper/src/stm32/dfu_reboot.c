// stm32/dfu_reboot.c - stand-in source of the fake Klipper (kflash simulator); never compiled
