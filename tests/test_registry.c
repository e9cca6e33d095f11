/* test_registry.c - devices.json round trips, corrupt files, names, keys,
 * settings, and the board commands over a fake world. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake_ops.h"
#include "kflash/kflash.h"
#include "kflash/registry.h"

#define REG "/cfg/devices.json"

static void roundtrip__what_is_saved_loads_back_the_same(void **state)
{
	struct kf_registry a = KF_REGISTRY_INIT, b = KF_REGISTRY_INIT;
	struct kf_error e = KF_ERROR_INIT;
	struct kf_board board = { .key = "octopus-pro", .name = "Octopus Pro",
				  .mcu = "stm32h723xx", .pattern = "usb-*_stm32h723xx_2800-if*",
				  .method = KF_METHOD_MAKE_FLASH, .flashable = false };
	char *doc, *doc2;

	(void)state;
	assert_int_equal(kf_registry_parse(REG, "{\"schema\":1}", 12, &a, &e), 0);
	assert_string_equal(a.settings.klipper_dir, "~/klipper");
	assert_int_equal(a.settings.timeout_build, 300);
	kf_registry_add(&a, &board);
	assert_int_equal(kf_settings_set(&a.settings, "timeout.flash", "90", &e), 0);
	assert_int_equal(kf_settings_set(&a.settings, "fallback", "false", &e), 0);
	doc = kf_registry_dump(&a);
	assert_int_equal(kf_registry_parse(REG, doc, strlen(doc), &b, &e), 0);
	assert_int_equal(b.n_boards, 1);
	assert_string_equal(b.boards[0].name, "Octopus Pro");
	assert_int_equal(b.boards[0].method, KF_METHOD_MAKE_FLASH);
	assert_false(b.boards[0].flashable);
	assert_int_equal(b.settings.timeout_flash, 90);
	assert_false(b.settings.fallback);
	doc2 = kf_registry_dump(&b);
	assert_string_equal(doc, doc2);
	free(doc);
	free(doc2);
	kf_registry_release(&a);
	kf_registry_release(&b);
	kf_error_release(&e);
}

static void expect_bad(const char *doc, const char *msg_part)
{
	struct kf_registry r = KF_REGISTRY_INIT;
	struct kf_error e = KF_ERROR_INIT;

	assert_int_equal(kf_registry_parse(REG, doc, strlen(doc), &r, &e), KF_EINPUT);
	assert_non_null(e.what);
	assert_non_null(strstr(e.what, REG));
	if (!strstr(e.what, msg_part))
		fail_msg("'%s' does not mention '%s'", e.what, msg_part);
	kf_registry_release(&r);
	kf_error_release(&e);
}

static void roundtrip__learned_port_and_katapult_serial_load_back(void **state)
{
	static const char old[] = "{\"schema\": 1, \"boards\": [{\"key\": \"lpc\", "
		"\"name\": \"lpc\", \"mcu\": \"lpc1769\", "
		"\"pattern\": \"usb-*_lpc1769_12345-if*\"}]}";
	struct kf_registry a = KF_REGISTRY_INIT, b = KF_REGISTRY_INIT;
	struct kf_error e = KF_ERROR_INIT;
	char *doc;

	(void)state;
	/* a file from before these fields loads, and saves without them */
	assert_int_equal(kf_registry_parse(REG, old, strlen(old), &a, &e), 0);
	assert_null(a.boards[0].port);
	assert_null(a.boards[0].katapult_serial);
	doc = kf_registry_dump(&a);
	assert_null(strstr(doc, "\"port\""));
	assert_null(strstr(doc, "katapult_serial"));
	free(doc);
	a.boards[0].port = kf_xstrdup("platform-fd500000.pcie-pci-0000:01:00.0-usb-0:1.4.5:1.0");
	a.boards[0].katapult_serial = kf_xstrdup("3D0A1B2C4E5F60718293A4B5C6D7E8F9");
	doc = kf_registry_dump(&a);
	assert_int_equal(kf_registry_parse(REG, doc, strlen(doc), &b, &e), 0);
	assert_string_equal(b.boards[0].port,
			    "platform-fd500000.pcie-pci-0000:01:00.0-usb-0:1.4.5:1.0");
	assert_string_equal(b.boards[0].katapult_serial, "3D0A1B2C4E5F60718293A4B5C6D7E8F9");
	free(doc);
	kf_registry_release(&a);
	kf_registry_release(&b);
	expect_bad("{\"schema\": 1, \"boards\": [{\"key\": \"x\", \"name\": \"x\", "
		   "\"mcu\": \"m\", \"pattern\": \"usb-*_m_0001-if*\", \"port\": 7}]}", "boards[0].port");
}

static void roundtrip__can_nodes_and_bridges_load_back(void **state)
{
	static const char doc0[] = "{\"schema\": 1, \"boards\": ["
		"{\"key\": \"ebb\", \"name\": \"EBB36\", \"mcu\": \"stm32g0b1xx\", "
		"\"transport\": \"can\", \"canbus_uuid\": \"AABBCCDDEEFF\"}, "
		"{\"key\": \"oct\", \"name\": \"Octopus\", \"mcu\": \"stm32f446xx\", "
		"\"pattern\": \"usb-*_stm32f446xx_3A00-if*\", \"transport\": \"bridge\", "
		"\"canbus_uuid\": \"84d8fa5cebcd\", \"interface\": \"can1\"}]}";
	struct kf_registry a = KF_REGISTRY_INIT, b = KF_REGISTRY_INIT;
	struct kf_error e = KF_ERROR_INIT;
	char *doc;

	(void)state;
	assert_int_equal(kf_registry_parse(REG, doc0, strlen(doc0), &a, &e), 0);
	assert_int_equal(a.boards[0].link, KF_LINK_CAN);
	assert_string_equal(a.boards[0].canbus_uuid, "aabbccddeeff");
	assert_string_equal(a.boards[0].interface, "can0");
	assert_string_equal(a.boards[0].pattern, "");
	assert_int_equal(a.boards[1].link, KF_LINK_BRIDGE);
	assert_string_equal(a.boards[1].canbus_uuid, "84d8fa5cebcd");
	assert_string_equal(a.boards[1].interface, "can1");
	doc = kf_registry_dump(&a);
	assert_int_equal(kf_registry_parse(REG, doc, strlen(doc), &b, &e), 0);
	assert_int_equal(b.boards[0].link, KF_LINK_CAN);
	assert_string_equal(b.boards[0].canbus_uuid, "aabbccddeeff");
	assert_int_equal(b.boards[1].link, KF_LINK_BRIDGE);
	assert_string_equal(b.boards[1].interface, "can1");
	free(doc);
	kf_registry_release(&a);
	kf_registry_release(&b);
	/* as strict as the command line */
	expect_bad("{\"schema\": 1, \"boards\": [{\"key\": \"x\", \"name\": \"x\", "
		   "\"mcu\": \"m\", \"transport\": \"can\"}]}", "boards[0].canbus_uuid");
	expect_bad("{\"schema\": 1, \"boards\": [{\"key\": \"x\", \"name\": \"x\", "
		   "\"mcu\": \"m\", \"transport\": \"can\", \"canbus_uuid\": \"12345\"}]}",
		   "boards[0].canbus_uuid");
	expect_bad("{\"schema\": 1, \"boards\": [{\"key\": \"x\", \"name\": \"x\", "
		   "\"mcu\": \"m\", \"transport\": \"can\", \"canbus_uuid\": "
		   "\"aabbccddeeff\", \"interface\": \"can0; reboot\"}]}", "boards[0].interface");
	expect_bad("{\"schema\": 1, \"boards\": [{\"key\": \"x\", \"name\": \"x\", "
		   "\"mcu\": \"m\", \"pattern\": \"p\", \"canbus_uuid\": \"aabbccddeeff\"}]}",
		   "boards[0].transport");
	expect_bad("{\"schema\": 1, \"boards\": [{\"key\": \"x\", \"name\": \"x\", "
		   "\"mcu\": \"m\", \"pattern\": \"p\", \"transport\": \"i2c\"}]}",
		   "boards[0].transport");
	expect_bad("{\"schema\": 1, \"boards\": [{\"key\": \"x\", \"name\": \"x\", "
		   "\"mcu\": \"m\", \"transport\": \"bridge\"}]}", "boards[0].canbus_uuid");
	expect_bad("{\"schema\": 1, \"boards\": [{\"key\": \"x\", \"name\": \"x\", "
		   "\"mcu\": \"m\"}]}", "boards[0].pattern");
}

static void parse__corrupt_files_are_named_with_their_position(void **state)
{
	(void)state;
	expect_bad("{\"schema\": 1, \"boards\": [", "line 1");
	expect_bad("{\"schema\": 1,\n \"boards\": [}\n", "line 2");
	expect_bad("", "line 1");
	expect_bad("[]", "JSON object");
	expect_bad("{\"boards\": []}", "schema");
	expect_bad("{\"schema\": 2}", "newer kflash");
	expect_bad("{\"schema\": 1, \"boards\": {}}", "boards must be an array");
	expect_bad("{\"schema\": 1, \"boards\": [{\"key\": \"a\", \"name\": \"A\"}]}",
		   "boards[0].mcu");
	expect_bad("{\"schema\": 1, \"boards\": [{\"key\": \"../etc\", \"name\": \"A\", "
		   "\"mcu\": \"x\", \"pattern\": \"p\"}]}", "boards[0].key");
	expect_bad("{\"schema\": 1, \"settings\": {\"timeouts\": {\"build\": 0}}}",
		   "settings.timeouts.build");
	expect_bad("{\"schema\": 1, \"settings\": {\"fallback\": \"yes\"}}",
		   "settings.fallback");
	expect_bad("{\"schema\": 1, \"schema\": 1}", "duplicate");
	expect_bad("{\"schema\": 1, \"boards\": [{\"key\": \"a\", \"name\": \"A\", "
		   "\"mcu\": \"x\", \"pattern\": \"usb-*_x_1-if*\"}, {\"key\": \"a\", \"name\": "
		   "\"B\", \"mcu\": \"x\", \"pattern\": \"usb-*_x_2-if*\"}]}", "unique");
}

static void names__bad_names_are_refused_good_ones_slugged(void **state)
{
	struct kf_registry reg = KF_REGISTRY_INIT;
	struct kf_error e = KF_ERROR_INIT;
	struct kf_board b = { .key = "octopus-pro", .name = "Octopus Pro", .mcu = "m",
			      .pattern = "p", .flashable = true };
	char long_name[80], *k;

	(void)state;
	memset(long_name, 'a', 65);
	long_name[65] = '\0';
	assert_int_equal(kf_name_check("", &e), KF_EINPUT);
	assert_int_equal(kf_name_check(long_name, &e), KF_EINPUT);
	long_name[64] = '\0';
	assert_int_equal(kf_name_check(long_name, &e), 0);
	assert_int_equal(kf_name_check("a/b", &e), KF_EINPUT);
	assert_int_equal(kf_name_check("..", &e), KF_EINPUT);
	assert_int_equal(kf_name_check("x..y", &e), KF_EINPUT);
	assert_int_equal(kf_name_check("evil\033[2J", &e), KF_EINPUT);
	assert_int_equal(kf_name_check("tab\there", &e), KF_EINPUT);
	assert_int_equal(kf_name_check("$(reboot)", &e), KF_EINPUT);
	assert_int_equal(kf_name_check("a;b", &e), KF_EINPUT);
	assert_int_equal(kf_name_check("Octo\xc0\xafpus", &e), KF_EINPUT);
	assert_non_null(strstr(e.what, "UTF-8"));
	assert_int_equal(kf_name_check("K\xc3\xb6pfchen", &e), 0);
	assert_int_equal(kf_name_check("---", &e), KF_EINPUT);
	assert_int_equal(kf_name_check("Octopus Pro (v1.1)", &e), 0);
	assert_int_equal(kf_name_check("EBB36 Kopf", &e), 0);
	k = kf_slugify("  Octopus  Pro (v1.1) ");
	assert_string_equal(k, "octopus-pro-v1-1");
	free(k);
	assert_int_equal(kf_registry_parse(REG, "{\"schema\":1}", 12, &reg, &e), 0);
	kf_registry_add(&reg, &b);
	k = kf_registry_new_key(&reg, "OCTOPUS pro");
	assert_string_equal(k, "octopus-pro-2");
	b.key = k;
	kf_registry_add(&reg, &b);
	free(k);
	k = kf_registry_new_key(&reg, "octopus-pro");
	assert_string_equal(k, "octopus-pro-3");
	free(k);
	kf_registry_release(&reg);
	kf_error_release(&e);
}

static void settings__values_are_validated(void **state)
{
	struct kf_settings s;
	struct kf_error e = KF_ERROR_INIT;

	(void)state;
	kf_settings_defaults(&s);
	assert_int_equal(kf_settings_set(&s, "timeout.build", "9", &e), KF_EINPUT);
	assert_int_equal(kf_settings_set(&s, "timeout.build", "12x", &e), KF_EINPUT);
	assert_int_equal(kf_settings_set(&s, "timeout.build", "600", &e), 0);
	assert_int_equal(s.timeout_build, 600);
	assert_int_equal(kf_settings_set(&s, "fallback", "yes", &e), KF_EINPUT);
	assert_int_equal(kf_settings_set(&s, "default_method", "dfu", &e), KF_EINPUT);
	assert_int_equal(kf_settings_set(&s, "default_method", "make-flash", &e), 0);
	assert_int_equal(kf_settings_set(&s, "service", "klipper; reboot", &e), KF_EINPUT);
	assert_int_equal(kf_settings_set(&s, "service", "klipper-1", &e), 0);
	assert_int_equal(kf_settings_set(&s, "moonraker_url", "localhost", &e), KF_EINPUT);
	assert_int_equal(kf_settings_set(&s, "nope", "1", &e), KF_EINPUT);
	assert_non_null(strstr(e.what, "unknown setting"));
	kf_settings_release(&s);
	kf_error_release(&e);
}

/* A board entry with one field replaced (NULL: the field left out). */
static char *board_doc(const char *name, const char *mcu, const char *pattern,
		       const char *extra)
{
	return kf_asprintf("{\"schema\": 1, \"boards\": [{\"key\": \"a\", \"name\": "
			   "\"%s\", \"mcu\": \"%s\", \"pattern\": \"%s\"%s}]}", name, mcu,
			   pattern, extra ? extra : "");
}

static void expect_bad_board(const char *name, const char *mcu, const char *pattern,
			     const char *extra, const char *msg_part)
{
	char *doc = board_doc(name, mcu, pattern, extra);

	expect_bad(doc, msg_part);
	free(doc);
}

/* What the CLI would refuse to write, the loader refuses to read: a hand
 * edit must not get past kflash's checks by going around them. */
static void hostile__loader_is_as_strict_as_the_cli(void **state)
{
	static const char good_pat[] = "usb-*_stm32f446xx_3A0039000851313433343333-if*";
	char big[5000];

	(void)state;
	/* settings */
	expect_bad("{\"schema\": 1, \"settings\": {\"service\": \"--all\"}}",
		   "settings.service");
	expect_bad("{\"schema\": 1, \"settings\": {\"service\": \"klipper;reboot\"}}",
		   "settings.service");
	expect_bad("{\"schema\": 1, \"settings\": {\"service\": \"../../x\"}}",
		   "settings.service");
	expect_bad("{\"schema\": 1, \"settings\": {\"moonraker_url\": \"file:///etc/passwd\"}}",
		   "settings.moonraker_url");
	expect_bad("{\"schema\": 1, \"settings\": {\"moonraker_url\": "
		   "\"http://localhost:7125 file:///etc/passwd\"}}", "settings.moonraker_url");
	expect_bad("{\"schema\": 1, \"settings\": {\"klipper_dir\": \"~/kl\\nipper\"}}",
		   "settings.klipper_dir");
	expect_bad("{\"schema\": 1, \"settings\": {\"python\": 3}}", "settings.python");
	expect_bad("{\"schema\": 1, \"settings\": {\"moonraker_api_key\": \"a b\"}}",
		   "settings.moonraker_api_key");
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	{
		char *doc = kf_asprintf("{\"schema\": 1, \"settings\": {\"katapult_dir\": "
					"\"/%s\"}}", big);

		expect_bad(doc, "settings.katapult_dir");
		free(doc);
	}
	/* boards */
	expect_bad_board("a/b", "stm32f446xx", good_pat, NULL, "boards[0].name");
	expect_bad_board("$(reboot)", "stm32f446xx", good_pat, NULL, "boards[0].name");
	expect_bad_board("x\\ny", "stm32f446xx", good_pat, NULL, "boards[0].name");
	expect_bad_board("A", "stm32; reboot", good_pat, NULL, "boards[0].mcu");
	expect_bad_board("A", "stm32f446xx", "*", NULL, "boards[0].pattern");
	expect_bad_board("A", "stm32f446xx", "usb-*", NULL, "boards[0].pattern");
	expect_bad_board("A", "stm32f446xx", "../../dev/sda", NULL, "boards[0].pattern");
	expect_bad_board("A", "stm32f446xx", "usb-*_stm32f446xx_1 -if*", NULL,
			 "boards[0].pattern");
	expect_bad_board("A", "stm32f446xx", good_pat, ", \"katapult_serial\": \"../x\"",
			 "boards[0].katapult_serial");
	expect_bad_board("A", "stm32f446xx", good_pat, ", \"port\": \"a;b\"",
			 "boards[0].port");
	/* two boards that one device would match, or with one name */
	expect_bad("{\"schema\": 1, \"boards\": [{\"key\": \"a\", \"name\": \"A\", "
		   "\"mcu\": \"stm32f446xx\", \"pattern\": \"usb-*_stm32f446xx_3A00-if*\"}, "
		   "{\"key\": \"b\", \"name\": \"B\", \"mcu\": \"stm32f446xx\", "
		   "\"pattern\": \"usb-*_stm32f446xx_3A00-if*\"}]}", "boards[1].pattern");
	expect_bad("{\"schema\": 1, \"boards\": [{\"key\": \"a\", \"name\": \"A\", "
		   "\"mcu\": \"stm32f446xx\", \"pattern\": \"usb-*_stm32f446xx_3A00-if*\"}, "
		   "{\"key\": \"b\", \"name\": \"a\", \"mcu\": \"stm32f446xx\", "
		   "\"pattern\": \"usb-*_stm32f446xx_3B00-if*\"}]}", "boards[1].name");
	/* what the older Python tool wrote still loads */
	{
		static const char old[] = "{\"schema\": 1, \"boards\": [{\"key\": \"oct\", "
			"\"name\": \"Octopus\", \"mcu\": \"stm32h723xx\", "
			"\"pattern\": \"usb-Klipper_stm32h723xx_29*\"}]}";
		struct kf_registry r = KF_REGISTRY_INIT;
		struct kf_error e = KF_ERROR_INIT;

		assert_int_equal(kf_registry_parse(REG, old, strlen(old), &r, &e), 0);
		kf_registry_release(&r);
	}
}

static void hostile__settings_values_are_single_safe_lines(void **state)
{
	struct kf_settings s;
	struct kf_error e = KF_ERROR_INIT;
	char big[5000];

	(void)state;
	kf_settings_defaults(&s);
	assert_int_equal(kf_settings_set(&s, "service", "--all", &e), KF_EINPUT);
	assert_int_equal(kf_settings_set(&s, "service", "-klipper", &e), KF_EINPUT);
	assert_int_equal(kf_settings_set(&s, "service", "klipper@printer_2", &e), 0);
	assert_int_equal(kf_settings_set(&s, "moonraker_url", "http://a:7125 file:///x", &e),
			 KF_EINPUT);
	assert_int_equal(kf_settings_set(&s, "moonraker_url", "http://a:7125, http://b:7126",
					 &e), 0);
	assert_int_equal(kf_settings_set(&s, "klipper_dir", "/home/pi/kl\xff\xfeipper", &e),
			 KF_EINPUT);
	assert_non_null(strstr(e.what, "UTF-8"));
	assert_int_equal(kf_settings_set(&s, "python", "/usr/bin/python3\r", &e), KF_EINPUT);
	memset(big, 'a', sizeof(big) - 1);
	big[0] = '/';
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(kf_settings_set(&s, "katapult_dir", big, &e), KF_EINPUT);
	assert_non_null(strstr(e.what, "bytes"));
	/* what was refused changed nothing */
	assert_string_equal(s.service, "klipper@printer_2");
	assert_string_equal(s.klipper_dir, "~/klipper");
	kf_settings_release(&s);
	kf_error_release(&e);
}

/* ---- the commands over a fake world ----------------------------------------- */

static int quiet_cli(struct fake_world *w, const char *const *args)
{
	char *argv[16];
	int argc = 0, so = dup(1), se = dup(2), si = dup(0);
	int devnull = open("/dev/null", O_RDWR), code;

	argv[argc++] = "kflash";
	argv[argc++] = "--config-dir";
	argv[argc++] = "/cfg";
	for (; *args; args++)
		argv[argc++] = (char *)*args;
	argv[argc] = NULL;
	fflush(stdout);
	dup2(devnull, 0);
	dup2(devnull, 1);
	dup2(devnull, 2);
	code = kf_cli_main(&w->ops, argc, argv);
	fflush(stdout);
	fflush(stderr);
	dup2(so, 1);
	dup2(se, 2);
	dup2(si, 0);
	close(so);
	close(se);
	close(si);
	close(devnull);
	return code;
}

#define CLI(w, ...) quiet_cli(w, (const char *const[]){ __VA_ARGS__, NULL })

static int world_setup(void **state)
{
	struct fake_world *w = kf_xcalloc(1, sizeof(*w));

	fake_world_init(w);
	fake_add_tty(w, "/dev/ttyACM0",
		     "/dev/serial/by-id/usb-Klipper_stm32f446xx_3A0039000851313433343333-if00",
		     "1d50", "614e", "Klipper", "3A0039000851313433343333");
	fake_add_tty(w, "/dev/ttyACM1",
		     "/dev/serial/by-id/usb-Klipper_stm32f446xx_1F0028000B51363431363430-if00",
		     "1d50", "614e", "Klipper", "1F0028000B51363431363430");
	fake_add_tty(w, "/dev/ttyACM2",
		     "/dev/serial/by-id/usb-Beacon_Beacon_RevH_7C1A6B2C5153364B-if00",
		     "04d8", "e72b", "Beacon", "7C1A6B2C5153364B");
	*state = w;
	return 0;
}

static int world_teardown(void **state)
{
	fake_world_release(*state);
	free(*state);
	return 0;
}

static char *registry_text(struct fake_world *w)
{
	const struct fake_file *f = fake_get_file(w, REG);

	return f ? kf_xstrndup(f->data, f->len) : NULL;
}

static void add__registers_two_boards_with_the_same_mcu_apart(void **state)
{
	struct fake_world *w = *state;
	struct kf_registry reg = KF_REGISTRY_INIT;
	struct kf_error e = KF_ERROR_INIT;
	char *text;

	assert_int_equal(CLI(w, "add", "--name", "Octopus", "--device",
			     "usb-Klipper_stm32f446xx_3A0039000851313433343333-if00"), 0);
	assert_int_equal(CLI(w, "add", "--name", "Octopus 2", "--device", "/dev/ttyACM1",
			     "--method", "make-flash"), 0);
	text = registry_text(w);
	assert_non_null(text);
	assert_int_equal(kf_registry_parse(REG, text, strlen(text), &reg, &e), 0);
	assert_int_equal(reg.n_boards, 2);
	assert_string_equal(reg.boards[0].key, "octopus");
	assert_string_equal(reg.boards[0].pattern,
			    "usb-*_stm32f446xx_3A0039000851313433343333-if*");
	assert_string_equal(reg.boards[1].key, "octopus-2");
	assert_int_equal(reg.boards[1].method, KF_METHOD_MAKE_FLASH);
	kf_registry_release(&reg);
	kf_error_release(&e);
	free(text);
}

static void add__refusals_leave_the_registry_byte_for_byte(void **state)
{
	struct fake_world *w = *state;
	char *before, *after;

	assert_int_equal(CLI(w, "add", "--name", "Octopus", "--device", "/dev/ttyACM0"), 0);
	before = registry_text(w);
	/* the same board again, under another name */
	assert_int_equal(CLI(w, "add", "--name", "Other", "--device", "/dev/ttyACM0"), 2);
	/* a duplicate name */
	assert_int_equal(CLI(w, "add", "--name", "octopus", "--device", "/dev/ttyACM1"), 2);
	/* hostile names */
	assert_int_equal(CLI(w, "add", "--name", "../../etc", "--device", "/dev/ttyACM1"), 2);
	assert_int_equal(CLI(w, "add", "--name", "", "--device", "/dev/ttyACM1"), 2);
	assert_int_equal(CLI(w, "add", "--name", "a\nb", "--device", "/dev/ttyACM1"), 2);
	/* a probe, an unknown device, a wrong MCU, a bad method */
	assert_int_equal(CLI(w, "add", "--name", "Probe", "--device", "/dev/ttyACM2"), 2);
	assert_int_equal(CLI(w, "add", "--name", "X", "--device", "/dev/ttyACM9"), 2);
	assert_int_equal(CLI(w, "add", "--name", "X", "--device", "/dev/ttyACM1",
			     "--mcu", "rp2040"), 2);
	assert_int_equal(CLI(w, "add", "--name", "X", "--device", "/dev/ttyACM1",
			     "--method", "dfu"), 2);
	/* unknown boards and settings */
	assert_int_equal(CLI(w, "remove", "nope"), 2);
	assert_int_equal(CLI(w, "exclude", "nope"), 2);
	assert_int_equal(CLI(w, "settings", "nope", "1"), 2);
	after = registry_text(w);
	assert_string_equal(before, after);
	free(before);
	free(after);
}

static void lpc_tty(struct fake_world *w, const char *node, const char *port)
{
	struct kf_ttydev *t;

	fake_add_tty(w, node, "/dev/serial/by-id/usb-Klipper_lpc1769_12345-if00",
		     "1d50", "614e", "Klipper", "12345");
	t = &w->ttys[w->n_ttys - 1];
	t->product = kf_xstrdup("lpc1769");
	t->by_path = kf_asprintf("/dev/serial/by-path/platform-fd500000.pcie-pci-"
				 "0000:01:00.0-usb-0:%s:1.0", port);
}

static void add__records_the_port_and_refuses_boards_it_cannot_tell_apart(void **state)
{
	struct fake_world *w = *state;
	struct kf_registry reg = KF_REGISTRY_INIT;
	struct kf_error e = KF_ERROR_INIT;
	char *text;

	lpc_tty(w, "/dev/ttyACM3", "1.4.5");
	assert_int_equal(CLI(w, "add", "--name", "lpc", "--device", "/dev/ttyACM3"), 0);
	text = registry_text(w);
	assert_int_equal(kf_registry_parse(REG, text, strlen(text), &reg, &e), 0);
	assert_string_equal(reg.boards[0].pattern, "usb-*_lpc1769_12345-if*");
	assert_string_equal(reg.boards[0].port,
			    "platform-fd500000.pcie-pci-0000:01:00.0-usb-0:1.4.5:1.0");
	assert_null(reg.boards[0].katapult_serial);
	kf_registry_release(&reg);
	free(text);
	/* a second board with Klipper's default serial: neither can be found
	 * by name, so kflash registers neither */
	assert_int_equal(CLI(w, "remove", "lpc"), 0);
	lpc_tty(w, "/dev/ttyACM4", "1.4.6");
	assert_int_equal(CLI(w, "add", "--name", "lpc", "--device", "/dev/ttyACM3"), 2);
	text = registry_text(w);
	assert_null(strstr(text, "lpc1769"));
	free(text);
	kf_error_release(&e);
}

static void corrupt_registry__is_reported_and_never_overwritten(void **state)
{
	struct fake_world *w = *state;
	static const char broken[] = "{\"schema\": 1, \"boards\": [{\"key\": \"oct";
	static const char newer[] = "{\"schema\": 7, \"boards\": []}";
	const struct fake_file *f;

	fake_put_file(w, REG, broken);
	assert_int_equal(CLI(w, "list"), 2);
	assert_int_equal(CLI(w, "add", "--name", "X", "--device", "/dev/ttyACM1"), 2);
	assert_int_equal(CLI(w, "settings", "fallback", "false"), 2);
	f = fake_get_file(w, REG);
	assert_string_equal(f->data, broken);
	fake_put_file(w, REG, newer);
	assert_int_equal(CLI(w, "remove", "x"), 2);
	assert_string_equal(fake_get_file(w, REG)->data, newer);
	assert_false(fake_did(w, "write " REG));
}

/* A full disk: the change is refused with its cause and a step, and the
 * registry is what it was. */
static void full_disk__a_save_that_fails_leaves_the_registry(void **state)
{
	struct fake_world *w = *state;
	static const char before[] = "{\"schema\": 1, \"settings\": {\"timeouts\": "
		"{\"build\": 300}}}";
	struct kf_registry reg = KF_REGISTRY_INIT;
	struct kf_error e = KF_ERROR_INIT;

	fake_put_file(w, REG, before);
	w->full = "/cfg";
	assert_int_equal(CLI(w, "settings", "timeout.build", "600"), 1);
	assert_string_equal(fake_get_file(w, REG)->data, before);
	assert_int_equal(kf_registry_load(&w->ops, "/cfg", &reg, &e), 0);
	assert_int_equal(kf_registry_save(&w->ops, &reg, &e), KF_EFAILED);
	assert_non_null(strstr(e.what, "No space left on device (it is unchanged)"));
	assert_int_equal(e.errnum, ENOSPC);
	assert_non_null(strstr(e.steps[0], "df -h /cfg"));
	w->full = NULL;
	kf_registry_release(&reg);
	kf_error_release(&e);
}

static void exclude_include_remove__change_only_that_board(void **state)
{
	struct fake_world *w = *state;
	struct kf_registry reg = KF_REGISTRY_INIT;
	struct kf_error e = KF_ERROR_INIT;
	char *text;

	assert_int_equal(CLI(w, "add", "--name", "A", "--device", "/dev/ttyACM0"), 0);
	assert_int_equal(CLI(w, "add", "--name", "B", "--device", "/dev/ttyACM1"), 0);
	assert_int_equal(CLI(w, "exclude", "a"), 0);
	text = registry_text(w);
	assert_int_equal(kf_registry_parse(REG, text, strlen(text), &reg, &e), 0);
	assert_false(reg.boards[0].flashable);
	assert_true(reg.boards[1].flashable);
	kf_registry_release(&reg);
	free(text);
	assert_int_equal(CLI(w, "include", "A"), 0);
	fake_put_file(w, "/cfg/configs/b/.config", "CONFIG_MCU=\"stm32f446xx\"\n");
	assert_int_equal(CLI(w, "remove", "b", "--purge"), 0);
	assert_true(fake_did(w, "unlink /cfg/configs/b/.config"));
	text = registry_text(w);
	assert_int_equal(kf_registry_parse(REG, text, strlen(text), &reg, &e), 0);
	assert_int_equal(reg.n_boards, 1);
	assert_true(reg.boards[0].flashable);
	kf_registry_release(&reg);
	kf_error_release(&e);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(roundtrip__what_is_saved_loads_back_the_same),
		cmocka_unit_test(roundtrip__learned_port_and_katapult_serial_load_back),
		cmocka_unit_test(roundtrip__can_nodes_and_bridges_load_back),
		cmocka_unit_test(parse__corrupt_files_are_named_with_their_position),
		cmocka_unit_test(names__bad_names_are_refused_good_ones_slugged),
		cmocka_unit_test(settings__values_are_validated),
		cmocka_unit_test(hostile__loader_is_as_strict_as_the_cli),
		cmocka_unit_test(hostile__settings_values_are_single_safe_lines),
		cmocka_unit_test_setup_teardown(add__registers_two_boards_with_the_same_mcu_apart, world_setup, world_teardown),
		cmocka_unit_test_setup_teardown(add__refusals_leave_the_registry_byte_for_byte, world_setup, world_teardown),
		cmocka_unit_test_setup_teardown(add__records_the_port_and_refuses_boards_it_cannot_tell_apart, world_setup, world_teardown),
		cmocka_unit_test_setup_teardown(corrupt_registry__is_reported_and_never_overwritten, world_setup, world_teardown),
		cmocka_unit_test_setup_teardown(exclude_include_remove__change_only_that_board, world_setup, world_teardown),
		cmocka_unit_test_setup_teardown(full_disk__a_save_that_fails_leaves_the_registry, world_setup, world_teardown),
	};

	return cmocka_run_group_tests_name("registry", tests, NULL, NULL);
}
