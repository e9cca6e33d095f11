/* transport.c - which transport reaches a board; what every transport's
 * location holds. */
#include <string.h>

#include "kflash/transport.h"
#include "kflash/util.h"

void kf_where_release(struct kf_where *w)
{
	free(w->node);
	free(w->label);
	free(w->mcu);
	free(w->port);
	free(w->id);
	memset(w, 0, sizeof(*w));
}

const struct kf_transport *kf_transport_for(const struct kf_board *b)
{
	/* every registered board is on USB serial, for now; a CAN board will
	 * be told by what its registry entry names (its UUID) */
	(void)b;
	return &kf_transport_usb;
}

const struct kf_transport *const kf_transports[] = {
	&kf_transport_usb,
	NULL,
};
