/* main.c - the kflash binary: the real ops table and the command line. */
#include <stdio.h>
#include <string.h>

#include "kflash/kflash.h"

int main(int argc, char **argv)
{
	struct kf_linux *lx;
	struct kf_ops ops;
	int r, code;

	r = kf_ops_linux_init(&ops, &lx);
	if (r < 0) {
		fprintf(stderr, "error: kflash cannot start: %s\n", strerror(-r));
		return 1;
	}
	code = kf_cli_main(&ops, argc, argv);
	/* a signal in the last moment, after kflash's last look: 128+N */
	r = kf_ops_linux_end(lx);
	if (r && code < 128) {
		fprintf(stderr, "error: stopped by signal %d as kflash finished; what "
			"it printed above was done\n", r);
		code = 128 + r;
	}
	kf_ops_linux_release(lx);
	return code;
}
