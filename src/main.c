/* main.c - the kflash binary: the real ops table and the command line. */
#include <stdio.h>
#include <string.h>

#include "kflash/kflash.h"
#include "kflash/service.h"

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
	/* the guardian is this same program, spawned by kflash itself */
	if (argc > 1 && strcmp(argv[1], KF_GUARDIAN_ARG) == 0)
		code = kf_guardian_main(&ops, argc - 2, argv + 2);
	else
		code = kf_cli_main(&ops, argc, argv);
	kf_ops_linux_release(lx);
	return code;
}
