// stm32/stm32g0.c - stand-in source of the fake Klipper (kflash simulator); never compiled
