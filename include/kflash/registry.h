/* registry.h - devices.json: the boards a printer owner registered, and the
 * settings kflash runs with.
 *
 * Loaded and saved through the ops table. A missing file is an empty
 * registry with default settings. A file that cannot be parsed, is cut
 * short, has the wrong shape or comes from a newer kflash is reported with
 * its path and position and is never overwritten. Saves are atomic.
 */
#ifndef KFLASH_REGISTRY_H
#define KFLASH_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>

#include "kflash/error.h"
#include "kflash/ops.h"

#define KF_REGISTRY_SCHEMA 1
#define KF_NAME_MAX 64

enum kf_method {
	KF_METHOD_DEFAULT,	/* the default_method setting */
	KF_METHOD_KATAPULT,
	KF_METHOD_MAKE_FLASH,
};

enum kf_link {
	KF_LINK_USB,		/* "usb": a USB serial device */
	KF_LINK_CAN,		/* "can": a node on a CAN interface */
	KF_LINK_BRIDGE,		/* "bridge": USB, and the bridge of its interface */
};

#define KF_CAN_INTERFACE "can0"

struct kf_settings {
	char *klipper_dir;	/* as stored, may start with ~/ */
	char *katapult_dir;
	char *python;
	char *service;		/* "auto": the unit Moonraker names per board */
	char *moonraker_url;	/* one URL, or several separated by spaces */
	char *moonraker_api_key;	/* X-Api-Key, or NULL */
	enum kf_method default_method;	/* KATAPULT or MAKE_FLASH */
	bool fallback;
	int timeout_build;	/* seconds */
	int timeout_flash;
	int timeout_service;
	int timeout_reconnect;
	int sessions_keep;	/* recorded sessions kept; 0 records none */
};

#define KF_SESSIONS_KEEP 20
#define KF_SESSIONS_MAX 1000

struct kf_board {
	char *key;		/* slug, unique, names configs/<key>/ */
	char *name;		/* display name */
	char *mcu;		/* e.g. stm32f446xx */
	char *pattern;		/* glob over by-id names */
	enum kf_method method;
	bool flashable;		/* false: excluded */
	/* What survives the change from Klipper to Katapult, for a board
	 * whose USB serial is set in its firmware (kf_board_port_only): all
	 * optional (NULL), and absent from files of older kflash. */
	char *port;		/* by-path name of its tty when kflash last saw it */
	/* How it is reached: USB serial (pattern, port, katapult_serial
	 * above), a CAN node (canbus_uuid on interface; pattern ""), or a
	 * USB board that is also the USB-to-CAN bridge of interface. */
	enum kf_link link;
	char *canbus_uuid;	/* 12 lower-case hex digits, or NULL */
	char *interface;	/* can0, ..., or NULL (USB) */
	char *katapult_serial;	/* the serial it showed in Katapult, learned when
				 * kflash sent it there and saw it arrive */
};

struct kf_registry {
	char *path;
	struct kf_settings settings;
	struct kf_board *boards;
	size_t n_boards;
	bool existed;		/* the file was there when loaded */
};

#define KF_REGISTRY_INIT { 0 }

/* config_dir/devices.json. Returns 0, or KF_EINPUT with err filled. */
int kf_registry_load(const struct kf_ops *o, const char *config_dir,
		     struct kf_registry *ret_reg, struct kf_error *err);
int kf_registry_save(const struct kf_ops *o, const struct kf_registry *reg,
		     struct kf_error *err);
void kf_registry_release(struct kf_registry *reg);

/* Parses a document (the part of load after reading). path names it in
 * errors. */
int kf_registry_parse(const char *path, const char *data, size_t len,
		      struct kf_registry *ret_reg, struct kf_error *err);
/* The document save writes, NUL-terminated, malloc'd. */
char *kf_registry_dump(const struct kf_registry *reg);

void kf_settings_defaults(struct kf_settings *s);

/* Finds a board by key or display name (case-insensitive). */
struct kf_board *kf_registry_find(struct kf_registry *reg, const char *name);
/* Appends a copy of b; the registry owns the copy. */
struct kf_board *kf_registry_add(struct kf_registry *reg, const struct kf_board *b);
void kf_registry_remove(struct kf_registry *reg, struct kf_board *b);

const char *kf_method_name(enum kf_method m);	/* "katapult", "make-flash" */
const char *kf_link_name(enum kf_link l);	/* "usb", "can", "bridge" */
/* 0 when s is a CAN UUID as Klipper and Katapult print it (12 hex
 * digits); *ret lower-cased, malloc'd. KF_EINPUT with err otherwise. */
int kf_canbus_uuid_parse(const char *s, char **ret, struct kf_error *err);
/* 0 when s can name a network interface (1 to 15 of [A-Za-z0-9_.-], not
 * "." or ".."); KF_EINPUT with err otherwise. */
int kf_interface_check(const char *s, struct kf_error *err);
int kf_method_parse(const char *s, enum kf_method *ret);
/* The method a board flashes with, resolving DEFAULT. */
enum kf_method kf_board_method(const struct kf_board *b, const struct kf_settings *s);

/* A systemd unit name kflash will pass to systemctl: systemd's characters,
 * never starting with '-' (an option) or '.'. */
bool kf_unit_name_ok(const char *v);
/* An MCU name as Klipper's Kconfig spells it (CONFIG_MCU): [A-Za-z0-9_]. */
bool kf_mcu_name_ok(const char *v);
/* A by-id pattern: udev's name characters and fnmatch's, and the MCU's
 * name in it (a pattern without one could match any board). */
bool kf_pattern_ok(const char *pattern, const char *mcu);

/* Names: 0 when usable as a display name, else KF_EINPUT with err saying
 * why. */
int kf_name_check(const char *name, struct kf_error *err);
/* The key for name: lower-case ASCII slug, unique in reg (-2, -3, ...).
 * malloc'd. */
char *kf_registry_new_key(const struct kf_registry *reg, const char *name);
char *kf_slugify(const char *name);

/* Frees what kf_settings_defaults and kf_settings_set allocated. */
void kf_settings_release(struct kf_settings *s);

/* Settings by key, for `kflash settings`. */
#define KF_SETTINGS_KEYS "klipper_dir katapult_dir python service moonraker_url " \
	"moonraker_api_key " \
	"default_method fallback timeout.build timeout.flash timeout.service " \
	"timeout.reconnect sessions.keep"
/* The value as text (malloc'd), or NULL for an unknown key. */
char *kf_settings_get(const struct kf_settings *s, const char *key);
/* Validates and sets; KF_EINPUT with err on an unknown key or bad value.
 * Directory checks are the caller's (they need the filesystem). */
int kf_settings_set(struct kf_settings *s, const char *key, const char *value,
		    struct kf_error *err);

#endif
