/* simcfg.h - the simulator's boards for its fuzz targets: a board
 * configuration chosen by one input byte, and a private directory for the
 * images a board writes when it is told COMPLETE (the one file the board
 * emulator writes; removed when the process ends). */
#ifndef KFLASH_FUZZ_SIM_H
#define KFLASH_FUZZ_SIM_H

#include <stdint.h>

#include "board.h"

/* MCU (and its application start), starting mode, fault and CAN build
 * from b; image_path is dir/name. */
void fuzz_sim_board_cfg(uint8_t b, const char *name, struct sim_board_cfg *ret);

#endif
