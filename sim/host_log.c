/* host_log.c - kflash-simhost's stderr log, its event log lines and its clock. */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "host.h"
#include "simutil.h"

int sim_verbose;

void sim_log(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("kflash-simhost: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

int64_t sim_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sim_event(struct sim_host *h, const char *board, const char *fmt, ...)
{
	va_list ap;
	int r;

	if (h->events_fd < 0)
		return;
	va_start(ap, fmt);
	r = sim_event_vwrite(h->events_fd, board, NULL, 0, fmt, ap);
	va_end(ap);
	if (r < 0)
		sim_log("events: %s", strerror(errno));
}
