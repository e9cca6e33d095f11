/* host_udev.c - kflash-simhost's udev description of a board: umockdev device text, sysfs attributes and links, by-id and by-path names. */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"

/* The USB host controller of a Raspberry Pi 4 (VL805 on PCIe): most
 * printer hosts are Pis, and its by-path names are the ones users see. */
#define SIM_PCI_SYSPATH "/sys/devices/platform/scb/fd500000.pcie/pci0000:00/0000:00:00.0/0000:01:00.0"
#define SIM_PATH_PREFIX "platform-fd500000.pcie-pci-0000:01:00.0"

/* udev's ID_VENDOR/ID_MODEL: whitespace runs to one '_', unsafe chars to '_'. */
static char *sim_udev_safe(const char *s)
{
	GString *o = g_string_new(NULL);
	const char *p = s;
	size_t len;

	while (*p == ' ')
		p++;
	len = strlen(p);
	while (len && p[len - 1] == ' ')
		len--;
	for (size_t i = 0; i < len; i++) {
		char c = p[i];

		if (c == ' ') {
			while (i + 1 < len && p[i + 1] == ' ')
				i++;
			g_string_append_c(o, '_');
		} else if (g_ascii_isalnum(c) || strchr("#+-.:=@_", c)) {
			g_string_append_c(o, c);
		} else {
			g_string_append_c(o, '_');
		}
	}
	return g_string_free(o, FALSE);
}

/* udev's ID_*_ENC: unsafe bytes as \xHH. */
static char *sim_udev_enc(const char *s)
{
	GString *o = g_string_new(NULL);

	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (g_ascii_isalnum(*p) || strchr("#+-.:=@_", *p))
			g_string_append_c(o, (char)*p);
		else
			g_string_append_printf(o, "\\x%02x", *p);
	}
	return g_string_free(o, FALSE);
}

/* ID_PATH_TAG: everything but alnum, '-' and '_' becomes '_'. */
static char *sim_path_tag(const char *path)
{
	char *t = g_strdup(path);

	for (char *p = t; *p; p++)
		if (!g_ascii_isalnum(*p) && *p != '-' && *p != '_')
			*p = '_';
	return t;
}

/* Klipper in USB-to-CAN bridge mode (src/generic/usb_canbus.c): a gs_usb
 * device, vendor class interface, bound by the kernel's gs_usb driver. */
#define SIM_BRIDGE_PID "606f"

bool sim_is_bridge(const struct sim_hboard *b, enum sim_mode mode)
{
	return b->fx.can_bridge && b->fx.kind == SIM_KIND_KLIPPER && mode == SIM_MODE_KLIPPER;
}

void sim_ident_of(const struct sim_hboard *b, enum sim_mode mode, struct sim_ident *id)
{
	const struct sim_fixture *f = &b->fx;

	if (f->kind == SIM_KIND_FIXED) {
		*id = (struct sim_ident){ .vid = f->vid, .pid = f->pid, .manufacturer = f->manufacturer,
					  .product = f->product, .serial = f->serial };
	} else if (sim_is_bridge(b, mode)) {
		*id = (struct sim_ident){ .vid = "1d50", .pid = SIM_BRIDGE_PID,
					  .manufacturer = f->manufacturer, .product = f->product,
					  .serial = f->usb_serial ? f->usb_serial : f->serial,
					  .driver = "gs_usb", .device_class = "00",
					  .interface_class = "ff0000", .net = f->can_bridge };
		return;
	} else if (mode == SIM_MODE_KLIPPER) {
		*id = (struct sim_ident){ .vid = "1d50", .pid = "614e",
					  .manufacturer = f->manufacturer, .product = f->product,
					  .serial = f->usb_serial ? f->usb_serial : f->serial };
	} else {
		*id = (struct sim_ident){ .vid = "1d50", .pid = "6177",
					  .manufacturer = f->boot_manufacturer, .product = f->mcu,
					  .serial = f->serial };
	}
	id->driver = f->driver;
	id->device_class = f->device_class;
	id->interface_class = f->interface_class;
}

bool sim_driver_is_acm(const char *driver)
{
	return !strcmp(driver, "cdc_acm");
}

/* sysfs path of bus BUS's root hub and of the device at PORT ("1.4.2"). */
static char *sim_usb_syspath(int bus, const char *port)
{
	GString *s = g_string_new(NULL);
	char **parts = g_strsplit(port, ".", -1);
	GString *chain = g_string_new(NULL);

	g_string_printf(s, "%s/usb%d", SIM_PCI_SYSPATH, bus);
	for (int i = 0; parts[i]; i++) {
		if (i)
			g_string_append_c(chain, '.');
		g_string_append(chain, parts[i]);
		g_string_append_printf(s, "/%d-%s", bus, chain->str);
	}
	g_strfreev(parts);
	g_string_free(chain, TRUE);
	return g_string_free(s, FALSE);
}

static void sim_desc_hub(GString *d, int bus, const char *port, int devnum)
{
	char *sys = port ? sim_usb_syspath(bus, port) : g_strdup_printf("%s/usb%d", SIM_PCI_SYSPATH, bus);
	char *idpath = port ? g_strdup_printf("%s-usb-0:%s", SIM_PATH_PREFIX, port) : g_strdup(SIM_PATH_PREFIX);
	char *tag = sim_path_tag(idpath);
	bool root = port == NULL;

	/* add_from_string() wants the path without the leading /sys */
	g_string_append_printf(d, "P: %s\n", sys + 4);
	g_string_append_printf(d, "N: bus/usb/%03d/%03d\n", bus, devnum);
	g_string_append_printf(d,
		"E: SUBSYSTEM=usb\nE: DEVTYPE=usb_device\nE: DRIVER=usb\n"
		"E: DEVNAME=/dev/bus/usb/%03d/%03d\nE: BUSNUM=%03d\nE: DEVNUM=%03d\n"
		"E: MAJOR=189\nE: MINOR=%d\n"
		"E: PRODUCT=%s\nE: TYPE=9/0/1\n"
		"E: ID_VENDOR=%s\nE: ID_VENDOR_ENC=%s\nE: ID_VENDOR_ID=%s\n"
		"E: ID_MODEL=%s\nE: ID_MODEL_ENC=%s\nE: ID_MODEL_ID=%s\n"
		"E: ID_REVISION=%s\nE: ID_SERIAL=%s\nE: ID_BUS=usb\nE: ID_USB_INTERFACES=:090000:\n"
		"E: ID_VENDOR_FROM_DATABASE=%s\nE: ID_MODEL_FROM_DATABASE=%s\n"
		"E: ID_PATH=%s\nE: ID_PATH_TAG=%s\n",
		bus, devnum, bus, devnum, (bus - 1) * 128 + devnum - 1,
		root ? "1d6b/2/606" : "2109/3431/421",
		root ? "Linux_6.6.51+rpt-rpi-v8_xhci-hcd" : "USB2.0_Hub",
		root ? "Linux\\x206.6.51+rpt-rpi-v8\\x20xhci-hcd" : "USB2.0\\x20Hub",
		root ? "1d6b" : "2109",
		root ? "xHCI_Host_Controller" : "USB2.0_Hub",
		root ? "xHCI\\x20Host\\x20Controller" : "USB2.0\\x20Hub",
		root ? "0002" : "3431",
		root ? "0606" : "0421",
		root ? "Linux_6.6.51+rpt-rpi-v8_xhci-hcd_xHCI_Host_Controller_0000:01:00.0" : "USB2.0_Hub",
		root ? "Linux Foundation" : "VIA Labs, Inc.",
		root ? "2.0 root hub" : "Hub",
		idpath, tag);
	g_string_append_printf(d,
		"A: idVendor=%s\nA: idProduct=%s\nA: bcdDevice=%s\nA: product=%s\n"
		"A: busnum=%d\nA: devnum=%d\nA: devpath=%s\nA: dev=189:%d\n"
		"A: bDeviceClass=09\nA: bDeviceSubClass=00\nA: bDeviceProtocol=%s\n"
		"A: bNumInterfaces= 1\nA: bNumConfigurations=1\nA: bConfigurationValue=1\n"
		"A: bMaxPacketSize0=64\nA: speed=480\nA: version= 2.10\nA: maxchild=4\n"
		"L: driver=../../../../../../../../../bus/usb/drivers/usb\n",
		root ? "1d6b" : "2109", root ? "0002" : "3431", root ? "0606" : "0421",
		root ? "xHCI Host Controller" : "USB2.0 Hub",
		bus, devnum, port ? port : "0", (bus - 1) * 128 + devnum - 1,
		root ? "01" : "02");
	if (root)
		g_string_append(d, "A: manufacturer=Linux 6.6.51+rpt-rpi-v8 xhci-hcd\nA: serial=0000:01:00.0\n");
	g_string_append_c(d, '\n');
	g_free(sys);
	g_free(idpath);
	g_free(tag);
}

/* The ID_* keys udev's usb_id builtin puts on the device and its tty. */
static void sim_desc_ids(GString *d, const struct sim_hboard *b, const struct sim_ident *id,
			 const char *idpath)
{
	char *vendor = id->manufacturer ? sim_udev_safe(id->manufacturer) : g_strdup(id->vid);
	char *vendor_enc = id->manufacturer ? sim_udev_enc(id->manufacturer) : g_strdup(id->vid);
	char *model = id->product ? sim_udev_safe(id->product) : g_strdup(id->pid);
	char *model_enc = id->product ? sim_udev_enc(id->product) : g_strdup(id->pid);
	char *serial = id->serial ? sim_udev_safe(id->serial) : NULL;
	char *tag = sim_path_tag(idpath);
	const char *ic = id->interface_class;

	g_string_append_printf(d,
		"E: ID_VENDOR=%s\nE: ID_VENDOR_ENC=%s\nE: ID_VENDOR_ID=%s\n"
		"E: ID_MODEL=%s\nE: ID_MODEL_ENC=%s\nE: ID_MODEL_ID=%s\n"
		"E: ID_REVISION=%s\n",
		vendor, vendor_enc, id->vid, model, model_enc, id->pid, b->fx.revision);
	if (serial)
		g_string_append_printf(d, "E: ID_SERIAL=%s_%s_%s\nE: ID_SERIAL_SHORT=%s\n",
				       vendor, model, serial, serial);
	else
		g_string_append_printf(d, "E: ID_SERIAL=%s_%s\n", vendor, model);
	g_string_append_printf(d, "E: ID_BUS=usb\nE: ID_USB_INTERFACES=:%s:%s\n",
			       ic, sim_driver_is_acm(id->driver) ? "0a0000:" : "");
	if (b->fx.vendor_db)
		g_string_append_printf(d, "E: ID_VENDOR_FROM_DATABASE=%s\n", b->fx.vendor_db);
	if (b->fx.model_db)
		g_string_append_printf(d, "E: ID_MODEL_FROM_DATABASE=%s\n", b->fx.model_db);
	g_string_append_printf(d, "E: ID_PATH=%s\nE: ID_PATH_TAG=%s\n", idpath, tag);
	g_free(vendor);
	g_free(vendor_enc);
	g_free(model);
	g_free(model_enc);
	g_free(serial);
	g_free(tag);
}

/* by-id name the way 60-serial.rules builds it. */
static char *sim_byid_name(const struct sim_hboard *b, const struct sim_ident *id)
{
	char *vendor = id->manufacturer ? sim_udev_safe(id->manufacturer) : g_strdup(id->vid);
	char *model = id->product ? sim_udev_safe(id->product) : g_strdup(id->pid);
	char *serial = id->serial ? sim_udev_safe(id->serial) : NULL;
	char *name;

	name = g_strdup_printf("usb-%s_%s%s%s-if00%s", vendor, model, serial ? "_" : "",
			       serial ? serial : "", sim_driver_is_acm(b->fx.driver) ? "" : "-port0");
	g_free(vendor);
	g_free(model);
	g_free(serial);
	return name;
}

static unsigned sim_hex(const char *s, size_t off, size_t n)
{
	char buf[8] = { 0 };

	memcpy(buf, s + off, n);
	return (unsigned)strtoul(buf, NULL, 16);
}

/* Description of the board's USB device, interface(s) and tty for the
 * given identity; also fills the board's syspaths and link names. */
char *sim_udev_desc_board(struct sim_hboard *b, const struct sim_ident *id)
{
	const struct sim_fixture *f = &b->fx;
	GString *d = g_string_new(NULL);
	char *usb = sim_usb_syspath(f->busnum, f->port);
	char *intf = g_strdup_printf("%s/%d-%s:1.0", usb, f->busnum, f->port);
	char *usb_idpath = g_strdup_printf("%s-usb-0:%s", SIM_PATH_PREFIX, f->port);
	char *tty_idpath = g_strdup_printf("%s-usb-0:%s:1.0", SIM_PATH_PREFIX, f->port);
	bool acm = sim_driver_is_acm(id->driver);
	int minor = b->tty[0] ? atoi(b->tty + 6) : 0;
	int major = acm ? 166 : 188;
	unsigned dc = sim_hex(id->device_class, 0, 2);
	unsigned ic = sim_hex(id->interface_class, 0, 2), isc = sim_hex(id->interface_class, 2, 2);
	unsigned ip = sim_hex(id->interface_class, 4, 2);
	unsigned rev = sim_hex(f->revision, 0, 4);
	char *upper_vid = g_ascii_strup(id->vid, -1), *upper_pid = g_ascii_strup(id->pid, -1);
	char *modalias;
	char *tty_parent, *tty_path, *byid, *bypath;

	modalias = g_strdup_printf("usb:v%sp%sd%04Xdc%02Xdsc00dp00ic%02Xisc%02Xip%02Xin00",
				   upper_vid, upper_pid, rev, dc, ic, isc, ip);

	/* USB device */
	g_string_append_printf(d, "P: %s\n", usb + 4);
	g_string_append_printf(d, "N: bus/usb/%03d/%03d\n", f->busnum, b->devnum);
	g_string_append_printf(d,
		"E: SUBSYSTEM=usb\nE: DEVTYPE=usb_device\nE: DRIVER=usb\n"
		"E: DEVNAME=/dev/bus/usb/%03d/%03d\nE: BUSNUM=%03d\nE: DEVNUM=%03d\n"
		"E: MAJOR=189\nE: MINOR=%d\nE: PRODUCT=%x/%x/%x\nE: TYPE=%u/0/0\n",
		f->busnum, b->devnum, f->busnum, b->devnum,
		(f->busnum - 1) * 128 + b->devnum - 1,
		sim_hex(id->vid, 0, 4), sim_hex(id->pid, 0, 4), rev, dc);
	sim_desc_ids(d, b, id, usb_idpath);
	g_string_append_printf(d,
		"A: idVendor=%s\nA: idProduct=%s\nA: bcdDevice=%s\n"
		"A: busnum=%d\nA: devnum=%d\nA: devpath=%s\nA: dev=189:%d\n"
		"A: bDeviceClass=%s\nA: bDeviceSubClass=00\nA: bDeviceProtocol=00\n"
		"A: bNumInterfaces= %d\nA: bNumConfigurations=1\nA: bConfigurationValue=1\n"
		"A: bmAttributes=80\nA: bMaxPower=100mA\nA: bMaxPacketSize0=64\n"
		"A: speed=12\nA: version= 2.00\nA: maxchild=0\nA: removable=removable\n"
		"A: authorized=1\nA: avoid_reset_quirk=0\nA: quirks=0x0\n"
		"L: driver=../../../../../../../../../../bus/usb/drivers/usb\n",
		id->vid, id->pid, f->revision, f->busnum, b->devnum, f->port,
		(f->busnum - 1) * 128 + b->devnum - 1, id->device_class, acm ? 2 : 1);
	if (id->manufacturer)
		g_string_append_printf(d, "A: manufacturer=%s\n", id->manufacturer);
	if (id->product)
		g_string_append_printf(d, "A: product=%s\n", id->product);
	if (id->serial)
		g_string_append_printf(d, "A: serial=%s\n", id->serial);
	g_string_append_c(d, '\n');

	/* Interface 0: the one the tty hangs off (cdc_acm's control interface). */
	g_string_append_printf(d, "P: %s\n", intf + 4);
	g_string_append_printf(d,
		"E: SUBSYSTEM=usb\nE: DEVTYPE=usb_interface\nE: DRIVER=%s\n"
		"E: PRODUCT=%x/%x/%x\nE: TYPE=%u/0/0\nE: INTERFACE=%u/%u/%u\nE: MODALIAS=%s\n"
		"A: bInterfaceNumber=00\nA: bAlternateSetting= 0\nA: bNumEndpoints=%s\n"
		"A: bInterfaceClass=%02x\nA: bInterfaceSubClass=%02x\nA: bInterfaceProtocol=%02x\n"
		"A: authorized=1\nA: supports_autosuspend=1\nA: modalias=%s\n"
		"L: driver=../../../../../../../../../../../bus/usb/drivers/%s\n\n",
		id->driver, sim_hex(id->vid, 0, 4), sim_hex(id->pid, 0, 4), rev, dc, ic, isc, ip,
		modalias, acm ? "01" : "03", ic, isc, ip, modalias, id->driver);

	if (id->net) {
		/* gs_usb's net device, the bridge's only child: no tty */
		b->usb_syspath = usb;
		b->nsyspaths = 0;
		b->syspaths[b->nsyspaths++] = sim_can_bridge_netdev(b->host, d, intf, id->net);
		b->syspaths[b->nsyspaths++] = intf;
		g_free(usb_idpath);
		g_free(tty_idpath);
		g_free(upper_vid);
		g_free(upper_pid);
		g_free(modalias);
		return g_string_free(d, FALSE);
	}
	if (acm) {
		/* cdc_acm also binds the data interface; no tty below it. */
		g_string_append_printf(d, "P: %s/%d-%s:1.1\n", usb + 4, f->busnum, f->port);
		g_string_append_printf(d,
			"E: SUBSYSTEM=usb\nE: DEVTYPE=usb_interface\nE: DRIVER=cdc_acm\n"
			"E: PRODUCT=%x/%x/%x\nE: TYPE=%u/0/0\nE: INTERFACE=10/0/0\n"
			"A: bInterfaceNumber=01\nA: bAlternateSetting= 0\nA: bNumEndpoints=02\n"
			"A: bInterfaceClass=0a\nA: bInterfaceSubClass=00\nA: bInterfaceProtocol=00\n"
			"A: authorized=1\nA: supports_autosuspend=1\n"
			"L: driver=../../../../../../../../../../../bus/usb/drivers/cdc_acm\n\n",
			sim_hex(id->vid, 0, 4), sim_hex(id->pid, 0, 4), rev, dc);
		tty_parent = g_strdup_printf("%s/tty", intf);
	} else {
		/* usb-serial drivers put a port device between interface and tty. */
		g_string_append_printf(d, "P: %s/%s\n", intf + 4, b->tty);
		g_string_append_printf(d,
			"E: SUBSYSTEM=usb-serial\nE: DRIVER=%s\n"
			"A: port_number=0\n"
			"L: driver=../../../../../../../../../../../../bus/usb-serial/drivers/%s\n\n",
			!strcmp(id->driver, "ch341") ? "ch341-uart" : id->driver,
			!strcmp(id->driver, "ch341") ? "ch341-uart" : id->driver);
		tty_parent = g_strdup_printf("%s/%s/tty", intf, b->tty);
	}

	byid = sim_byid_name(b, id);
	bypath = g_strdup_printf("%s%s", tty_idpath, acm ? "" : "-port0");
	tty_path = g_strdup_printf("%s/%s", tty_parent, b->tty);
	g_string_append_printf(d, "P: %s\n", tty_path + 4);
	g_string_append_printf(d,
		"E: SUBSYSTEM=tty\nE: DEVNAME=/dev/%s\nE: MAJOR=%d\nE: MINOR=%d\n"
		"E: DEVLINKS=/dev/serial/by-path/%s /dev/serial/by-id/%s\n",
		b->tty, major, minor, bypath, byid);
	sim_desc_ids(d, b, id, tty_idpath);
	g_string_append_printf(d,
		"E: ID_TYPE=generic\nE: ID_USB_INTERFACE_NUM=00\nE: ID_USB_DRIVER=%s\n"
		"E: ID_MM_CANDIDATE=1\nE: TAGS=:systemd:\nE: CURRENT_TAGS=:systemd:\n"
		"E: USEC_INITIALIZED=%lld\n"
		"A: dev=%d:%d\n"
		/* the kernel's link from a tty to the device it hangs off (the
		 * interface, or usb-serial's port): Klipper's flash_usb.py
		 * reads the USB device's ids and busnum/devnum beside it */
		"L: device=../../../%s\n\n",
		id->driver, (long long)sim_now_ms() * 1000, major, minor,
		acm ? strrchr(intf, '/') + 1 : b->tty);

	/* remember what to take away again, children first */
	b->usb_syspath = usb;
	b->nsyspaths = 0;
	b->syspaths[b->nsyspaths++] = tty_path;
	if (!acm)
		b->syspaths[b->nsyspaths++] = g_strdup_printf("%s/%s", intf, b->tty);
	else
		b->syspaths[b->nsyspaths++] = g_strdup_printf("%s/%d-%s:1.1", usb, f->busnum, f->port);
	b->syspaths[b->nsyspaths++] = intf;
	b->links[0] = g_strdup_printf("serial/by-id/%s", byid);
	b->links[1] = g_strdup_printf("serial/by-path/%s", bypath);

	g_free(usb_idpath);
	g_free(tty_idpath);
	g_free(upper_vid);
	g_free(upper_pid);
	g_free(modalias);
	g_free(tty_parent);
	g_free(byid);
	g_free(bypath);
	return g_string_free(d, FALSE);
}

/* Root hubs and the hubs between them and the boards, added once. */
int sim_udev_add_hubs(struct sim_host *h)
{
	GHashTable *seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	GString *d = g_string_new(NULL);
	GError *err = NULL;
	int r = 0;

	for (int i = 0; i < h->nboards; i++) {
		const struct sim_fixture *f = &h->boards[i].fx;
		char *key = g_strdup_printf("%d", f->busnum);
		char **parts;
		GString *chain;

		if (!g_hash_table_contains(seen, key)) {
			sim_desc_hub(d, f->busnum, NULL, 1);
			g_hash_table_add(seen, key);
		} else {
			g_free(key);
		}
		parts = g_strsplit(f->port, ".", -1);
		chain = g_string_new(NULL);
		for (int j = 0; parts[j] && parts[j + 1]; j++) {
			if (j)
				g_string_append_c(chain, '.');
			g_string_append(chain, parts[j]);
			key = g_strdup_printf("%d-%s", f->busnum, chain->str);
			if (!g_hash_table_contains(seen, key)) {
				sim_desc_hub(d, f->busnum, chain->str, sim_next_devnum(h, f->busnum));
				g_hash_table_add(seen, key);
			} else {
				g_free(key);
			}
		}
		g_string_free(chain, TRUE);
		g_strfreev(parts);
	}
	if (d->len && !umockdev_testbed_add_from_string(h->tb, d->str, &err)) {
		sim_log("cannot add the USB hubs: %s", err->message);
		g_error_free(err);
		r = -EINVAL;
	}
	g_string_free(d, TRUE);
	g_hash_table_destroy(seen);
	return r;
}
