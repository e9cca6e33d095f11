/* moonraker.h - what kflash asks Moonraker: is the printer printing, which
 * Klipper unit it talks to, what the printer's config says about its MCUs,
 * and which firmware each MCU runs. Over HTTP through the ops table.
 *
 * Fail closed: an answer that does not give a valid print_stats.state is
 * UNKNOWN, never idle, and says what Moonraker said so the caller can name
 * it. */
#ifndef KFLASH_MOONRAKER_H
#define KFLASH_MOONRAKER_H

#include <stdbool.h>
#include <stddef.h>

#include "kflash/ops.h"

/* One Moonraker instance: its URL and, when it requires a login, the API
 * key sent as X-Api-Key. */
struct kf_moonraker {
	const char *url;
	const char *api_key;	/* NULL or "" for none */
};

enum kf_print_verdict {
	KF_PRINT_UNKNOWN,	/* no valid print state: why in ->said */
	KF_PRINT_IDLE,		/* standby, complete, cancelled or error */
	KF_PRINT_BUSY,		/* printing or paused */
	KF_PRINT_NO_KLIPPY,	/* Moonraker runs, Klipper is not connected (503) */
};

struct kf_print_status {
	enum kf_print_verdict verdict;
	bool reachable;		/* something answered HTTP at the URL */
	bool auth;		/* it wants an API key (401/403) */
	long http_status;	/* 0 when nothing answered */
	char *state;		/* print_stats.state when valid */
	char *filename;
	double progress;	/* 0..1 */
	char *said;		/* UNKNOWN/NO_KLIPPY: what Moonraker said, for messages */
};

void kf_print_status_release(struct kf_print_status *p);

/* Never fails: whatever happens is a verdict. */
void kf_moonraker_print_status(const struct kf_ops *o, const struct kf_moonraker *m,
			       struct kf_print_status *ret);

/* Parses an answer to /printer/objects/query?print_stats&virtual_sdcard:
 * r and status as http_get returned them, body may be NULL. */
void kf_print_status_parse(int r, long status, const char *body,
			   struct kf_print_status *ret);

/* The Klipper unit this Moonraker instance talks to
 * (/machine/system_info instance_ids.klipper), malloc'd, or NULL;
 * *ret_err (may be NULL) is what asking gave: 0 or http_get's -errno. */
char *kf_moonraker_klipper_unit(const struct kf_ops *o, const struct kf_moonraker *m,
				int *ret_err);

/* The serial paths (and canbus_uuids) of every [mcu] section of the config
 * Klipper runs, from /printer/objects/query?configfile. 0, or -errno when
 * Moonraker or Klipper do not answer. */
int kf_moonraker_mcu_serials(const struct kf_ops *o, const struct kf_moonraker *m,
			     char ***ret, size_t *ret_n);

struct kf_mcu_version {
	char *object;		/* "mcu", "mcu ebb" */
	char *mcu;		/* mcu_constants.MCU, e.g. stm32g0b1xx */
	char *version;		/* mcu_version */
};

/* Every MCU Klipper knows. 0, or -errno when Moonraker or Klipper do not
 * answer. */
int kf_moonraker_mcus(const struct kf_ops *o, const struct kf_moonraker *m,
		      struct kf_mcu_version **ret, size_t *ret_n);
void kf_mcu_versions_free(struct kf_mcu_version *v, size_t n);
/* The same from every Moonraker of a moonraker_url setting (URLs separated
 * by spaces or commas), merged; 0 when at least one answered. */
int kf_moonraker_mcus_all(const struct kf_ops *o, const char *urls, const char *api_key,
			  struct kf_mcu_version **ret, size_t *ret_n);

/* "%20" for spaces and the like, for object names in query strings. */
char *kf_url_escape(const char *s);

#endif
