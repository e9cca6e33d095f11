// stm32/stm32f1.c - stand-in source of the fake Klipper (kflash simulator); never compiled
