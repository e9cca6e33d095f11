/* can.c - a CAN interface as sysfs and ip show it, and the nodes in
 * flashtool.py's query (see can.h). */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "kflash/can.h"
#include "kflash/util.h"

size_t kf_can_parse_query(const char *output, struct kf_can_node **ret)
{
	static const char tag[] = "Detected UUID: ";
	struct kf_can_node *v = NULL;
	const char *p = output;
	size_t n = 0, i, k;

	while (p && (p = strstr(p, tag))) {
		struct kf_can_node node = { .mode = KF_MODE_OTHER };
		const char *u = p + sizeof(tag) - 1, *app;

		p = u;
		for (k = 0; k < 12 && isxdigit((unsigned char)u[k]); k++)
			node.uuid[k] = (char)tolower((unsigned char)u[k]);
		if (k != 12 || isxdigit((unsigned char)u[12]))
			continue;
		app = strstr(u, "Application: ");
		if (app && app < u + 40 && !memchr(u, '\n', (size_t)(app - u))) {
			app += 13;
			if (strncmp(app, "Katapult", 8) == 0)
				node.mode = KF_MODE_KATAPULT;
			else if (strncmp(app, "Klipper", 7) == 0)
				node.mode = KF_MODE_KLIPPER;
		}
		for (i = 0; i < n && strcmp(v[i].uuid, node.uuid) != 0; i++)
			;
		if (i < n) {
			v[i].mode = node.mode;	/* the last answer counts */
			continue;
		}
		v = kf_xrealloc(v, (n + 1) * sizeof(*v));
		v[n++] = node;
	}
	*ret = v;
	return n;
}

/* a sysfs attribute as a number; -1 when it is not one */
static long attr_long(const struct kf_ops *o, const char *name, const char *attr, int *err)
{
	char *path = kf_asprintf("/sys/class/net/%s/%s", name, attr), *buf = NULL, *end;
	size_t len = 0;
	long v = -1;
	int r = kf_os_read_file(o, path, &buf, &len);

	if (r == 0) {
		v = strtol(buf, &end, 10);
		if (end == buf)
			v = -1;
	} else if (r != -ENOENT && !*err) {
		*err = r;
	}
	free(buf);
	free(path);
	return v;
}

int kf_can_iface_read(const struct kf_ops *o, const char *name, struct kf_can_iface *ret)
{
	char *dir = kf_asprintf("/sys/class/net/%s", name), *path, *state = NULL;
	enum kf_file_kind kind;
	size_t len = 0;
	int r, err = 0;

	memset(ret, 0, sizeof(*ret));
	ret->txqueuelen = ret->bitrate = -1;
	r = kf_os_file_kind(o, dir, &kind, NULL);
	free(dir);
	if (r < 0)
		return r;
	if (kind == KF_FILE_NONE) {
		ret->state = KF_CAN_MISSING;
		return 0;
	}
	path = kf_asprintf("/sys/class/net/%s/operstate", name);
	r = kf_os_read_file(o, path, &state, &len);
	free(path);
	if (r < 0 && r != -ENOENT)
		return r;
	/* a CAN interface without carrier logic says "unknown" when up */
	ret->state = state && (strncmp(state, "up", 2) == 0 || strncmp(state, "unknown", 7) == 0)
		   ? KF_CAN_UP : KF_CAN_DOWN;
	free(state);
	ret->txqueuelen = attr_long(o, name, "tx_queue_len", &err);
	ret->is_can = attr_long(o, name, "type", &err) == 280;
	return err;
}

long kf_can_parse_bitrate(const char *ip_json)
{
	json_t *doc = ip_json ? json_loads(ip_json, 0, NULL) : NULL, *bt;
	long v = -1;

	bt = json_object_get(json_object_get(json_object_get(json_object_get(
		json_array_get(doc, 0), "linkinfo"), "info_data"), "bittiming"), "bitrate");
	if (json_is_integer(bt))
		v = (long)json_integer_value(bt);
	json_decref(doc);
	return v;
}

int kf_can_carrier(const struct kf_ops *o, const char *name, struct kf_ttydev *ret)
{
	struct kf_ttydev *devs = NULL;
	size_t n = 0, i;
	int r = kf_os_enumerate_net(o, &devs, &n);

	memset(ret, 0, sizeof(*ret));
	if (r < 0)
		return r;
	for (i = 0; i < n; i++)
		if (devs[i].iface && strcmp(devs[i].iface, name) == 0) {
			*ret = devs[i];
			memset(&devs[i], 0, sizeof(devs[i]));
			break;
		}
	kf_ttydevs_free(devs, n);
	return 0;
}

static bool is(const char *a, const char *b)
{
	return a && b && strcasecmp(a, b) == 0;
}

bool kf_can_is_klipper_bridge(const struct kf_ttydev *usb, const char *mcu)
{
	return usb->iface && is(usb->vid, "1d50") && is(usb->pid, "606f") &&
	       is(usb->manufacturer, "Klipper") && (!mcu || is(usb->product, mcu));
}

char *kf_can_carrier_describe(const struct kf_ttydev *usb)
{
	if (kf_can_is_klipper_bridge(usb, NULL))
		return kf_asprintf("Klipper's USB-to-CAN bridge (%s, USB %s:%s)",
				   usb->product ? usb->product : "MCU not given", usb->vid,
				   usb->pid);
	return kf_asprintf("a USB-CAN adapter (%s%s%s, USB %s:%s)",
			   usb->product ? usb->product : "", usb->product ? ", " : "",
			   usb->driver ? usb->driver : "driver unknown",
			   usb->vid ? usb->vid : "?", usb->pid ? usb->pid : "?");
}
