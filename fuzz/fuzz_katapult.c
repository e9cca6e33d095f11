/* fuzz_katapult.c - the simulator's Katapult side (sim/board.c): the bytes
 * a flash tool sends a board, framed, checked (CRC, trailer, length) and
 * answered as Katapult's command_find_block() would, and Klipper mode's
 * watch for the serial bootloader request. The same bytes are fed once
 * whole and once a byte at a time to a second board: until the first
 * event (the bootloader entered, the application started, a hang), where
 * a real MCU drops the rest of what it received, both must answer the
 * same bytes, as a USB transfer may arrive in any pieces.
 *
 * Input: one byte choosing the board (simcfg.h), then the host's bytes. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "simcfg.h"

struct reply {
	uint8_t *data;
	size_t len;
	int events;
};

static void take(struct sim_board *b, const uint8_t *in, size_t n, struct reply *r)
{
	uint8_t out[SIM_BOARD_FRAME_MAX * 4];
	size_t got;

	do {
		(void)sim_board_input(b, in, n, out, sizeof(out), &got);
		r->data = realloc(r->data, r->len + got + 1);
		fuzz_assert(r->data != NULL);
		memcpy(r->data + r->len, out, got);
		r->len += got;
		in = NULL;
		n = 0;
	} while (got == sizeof(out));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sim_board_cfg cfg;
	struct sim_board *whole, *split;
	struct reply a = { 0 }, b = { 0 };
	const uint8_t *in = size ? data + 1 : data;
	size_t n = size ? size - 1 : 0, i;
	enum sim_event ev_a, ev_b = SIM_EV_NONE;

	fuzz_sim_board_cfg(size ? data[0] : 0, "whole", &cfg);
	whole = sim_board_new(&cfg);
	fuzz_sim_board_cfg(size ? data[0] : 0, "split", &cfg);
	split = sim_board_new(&cfg);
	fuzz_assert(whole && split);

	take(whole, in, n, &a);
	ev_a = sim_board_take_event(whole);
	for (i = 0; i < n && ev_b == SIM_EV_NONE; i++) {
		take(split, in + i, 1, &b);
		ev_b = sim_board_take_event(split);
	}
	fuzz_assert(ev_a == ev_b);
	fuzz_assert(a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0));
	fuzz_assert(sim_board_mode(whole) == sim_board_mode(split));

	/* what a driver does next: the board reset into the mode it names */
	sim_board_set_mode(whole, sim_board_mode(whole));
	(void)sim_board_app_problem(whole);
	take(whole, in, n, &a);
	sim_board_line(whole, 1200, 0);
	(void)sim_board_take_event(whole);

	free(a.data);
	free(b.data);
	sim_board_free(whole);
	sim_board_free(split);
	return 0;
}
