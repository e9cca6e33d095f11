/* placeholder source for the kflash simulator's fake rp2040_flash build */
