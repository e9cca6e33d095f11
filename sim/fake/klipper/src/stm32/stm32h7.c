// stm32/stm32h7.c - stand-in source of the fake Klipper (kflash simulator); never compiled
