// stm32/stm32f4.c - stand-in source of the fake Klipper (kflash simulator); never compiled
