/* placeholder source for the kflash simulator's fake hidflash build */
