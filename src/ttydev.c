/* ttydev.c - freeing the device records the udev op returns. */
#include <stdlib.h>
#include <string.h>

#include "kflash/ops.h"

void kf_ttydev_release(struct kf_ttydev *d)
{
	free(d->devnode);
	free(d->iface);
	free(d->by_id);
	free(d->by_path);
	free(d->vid);
	free(d->pid);
	free(d->manufacturer);
	free(d->product);
	free(d->serial);
	free(d->driver);
	memset(d, 0, sizeof(*d));
}

void kf_ttydevs_free(struct kf_ttydev *devs, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		kf_ttydev_release(&devs[i]);
	free(devs);
}
