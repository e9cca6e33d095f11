/* host_command.c - kflash-simhost's command: started in its own process group, and nothing of it outlives the testbed. */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include "host.h"

pid_t sim_cmd_spawn(char **argv, const sigset_t *oldmask, bool *ret_gave_tty)
{
	int pfd[2];
	pid_t pid;
	int e = 0;
	ssize_t n;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -1;
	pid = fork();
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (pid == 0) {
		close(pfd[0]);
		(void)setpgid(0, 0);
		/* interactive commands (kflash's menu) need the terminal */
		if (isatty(STDIN_FILENO) && tcgetpgrp(STDIN_FILENO) == getpgid(getppid()))
			(void)tcsetpgrp(STDIN_FILENO, getpid());
		signal(SIGPIPE, SIG_DFL);
		signal(SIGTTOU, SIG_DFL);
		sigprocmask(SIG_SETMASK, oldmask, NULL);
		execvp(argv[0], argv);
		e = errno;
		if (write(pfd[1], &e, sizeof(e)) < 0)
			_exit(127);
		_exit(127);
	}
	(void)setpgid(pid, pid);
	if (isatty(STDIN_FILENO) && tcgetpgrp(STDIN_FILENO) == getpgrp())
		*ret_gave_tty = tcsetpgrp(STDIN_FILENO, pid) == 0;
	close(pfd[1]);
	do
		n = read(pfd[0], &e, sizeof(e));
	while (n < 0 && errno == EINTR);
	close(pfd[0]);
	if (n == (ssize_t)sizeof(e)) {
		sim_log("cannot run %s: %s", argv[0], strerror(e));
		(void)waitpid(pid, NULL, 0);
		errno = e;
		return -2;
	}
	return pid;
}

/* Processes left behind by the command were re-parented to us (we are a
 * subreaper): end them too, so nothing outlives the testbed. */
static int sim_kill_orphans(int sig)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	pid_t self = getpid();
	int found = 0;

	if (!d)
		return 0;
	while ((de = readdir(d))) {
		char path[64], buf[512], *p;
		FILE *f;
		pid_t pid = (pid_t)atoi(de->d_name), ppid;

		if (pid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/stat", pid);
		f = fopen(path, "re");
		if (!f)
			continue;
		p = fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;
		fclose(f);
		if (p && sscanf(p + 1, " %*c %d", &ppid) == 1 && ppid == self) {
			found++;
			(void)kill(pid, sig);
		}
	}
	closedir(d);
	return found;
}

void sim_cmd_end_leftovers(pid_t child, bool gave_tty)
{
	/* Leftovers of the command: its group, then anything re-parented
	 * to us; they must not outlive the testbed. */
	int64_t until = sim_now_ms() + 1000;

	(void)killpg(child, SIGTERM);
	(void)sim_kill_orphans(SIGTERM);
	while (sim_now_ms() < until) {
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		if (!sim_kill_orphans(0))
			break;
		usleep(10000);
	}
	(void)killpg(child, SIGKILL);
	(void)sim_kill_orphans(SIGKILL);
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	if (gave_tty)
		(void)tcsetpgrp(STDIN_FILENO, getpgrp());
}
