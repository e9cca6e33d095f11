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
	kf_ops_linux_release(lx);
	return code;
}
