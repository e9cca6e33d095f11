/* simutil.c - the event log's line and the board files' trimming (simutil.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "simutil.h"

int sim_event_vwrite(int fd, const char *board, char *ret_line, size_t cap,
		     const char *fmt, va_list ap)
{
	char line[512];
	struct timespec ts;
	int n, m;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	n = snprintf(line, sizeof(line), "%lld.%03ld simboard %s ",
		     (long long)ts.tv_sec, ts.tv_nsec / 1000000, board);
	if (n < 0 || (size_t)n >= sizeof(line) - 2)
		return 0;
	m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	if (m < 0)
		return 0;
	n += m;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	if (ret_line && cap)
		snprintf(ret_line, cap, "%.*s", n, line);
	line[n++] = '\n';
	if (fd >= 0 && write(fd, line, (size_t)n) != n)
		return -1;
	return 0;
}

char *sim_strip(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}
