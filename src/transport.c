/* transport.c - which transport reaches a board; what every transport's
 * location holds; the scans a command reads. */
#include <stdlib.h>
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
	return b->link == KF_LINK_USB ? &kf_transport_usb : &kf_transport_can;
}

unsigned kf_flash_traits(const struct kf_transport *tr, const struct kf_board *b)
{
	return tr->flash_traits ? tr->flash_traits(b) : 0;
}

const struct kf_transport *const kf_transports[] = {
	&kf_transport_usb,
	&kf_transport_can,
	NULL,
};

void *kf_scans_find(const struct kf_scans *sc, const struct kf_transport *tr)
{
	size_t i;

	for (i = 0; i < sc->n; i++)
		if (sc->tr[i] == tr)
			return sc->scan[i];
	return NULL;
}

void *kf_scans_get(struct kf_ctx *ctx, const struct kf_registry *reg, struct kf_scans *sc,
		   const struct kf_transport *tr, struct kf_error *err, int *ret_r)
{
	void *scan = kf_scans_find(sc, tr);

	*ret_r = 0;
	if (scan)
		return scan;
	if (sc->n == KF_SCANS_MAX)
		abort();	/* more transports than kflash has */
	*ret_r = tr->scan(ctx, reg, &sc->scan[sc->n], err);
	if (*ret_r < 0)
		return NULL;
	sc->tr[sc->n] = tr;
	return sc->scan[sc->n++];
}

void kf_scans_release(struct kf_scans *sc)
{
	size_t i;

	for (i = 0; i < sc->n; i++)
		sc->tr[i]->scan_free(sc->scan[i]);
	sc->n = 0;
}

void kf_sighting_release(struct kf_sighting *s)
{
	kf_where_release(&s->at);
	free(s->maybe);
	free(s->maybe_note);
	memset(s, 0, sizeof(*s));
}

void kf_seen_release(struct kf_seen *s)
{
	free(s->id);
	free(s->label);
	free(s->mcu);
	free(s->blocked);
	json_decref(s->json);
	memset(s, 0, sizeof(*s));
}

void kf_seen_free(struct kf_seen *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		kf_seen_release(&v[i]);
	free(v);
}
