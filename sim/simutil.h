/* simutil.h - small pieces the simulator's programs share: the event log's
 * line (kflash-simhost, kflash-simcanbus) and the board files' trimming. */
#ifndef KFLASH_SIM_SIMUTIL_H
#define KFLASH_SIM_SIMUTIL_H

#include <stdarg.h>

/* Appends "<CLOCK_MONOTONIC s.ms> simboard BOARD <fmt...>\n" to FD in one
 * write (O_APPEND keeps concurrent actors' lines whole). The line without
 * its newline goes to ret_line (cap bytes) when that is not NULL. 0, or -1
 * with errno when the write failed. */
int sim_event_vwrite(int fd, const char *board, char *ret_line, size_t cap,
		     const char *fmt, va_list ap);

/* S without leading blanks and trailing blanks and line ends (in place). */
char *sim_strip(char *s);

#endif
