#!/bin/sh
# sim/test-interactive.sh - the add wizard and the menu, driven through a
# real pseudo-terminal in the simulated host (sim/interactive.py).
cd "$(dirname "$0")/.." || exit 2
exec /usr/bin/python3 - "$@" <<'PY'
import os, shutil, sys
sys.path.insert(0, "sim")
import simlib

def run(name, boards, prepare=None):
    host = simlib.Host(boards)
    host.setup()
    if prepare:
        prepare(host)
    rc = host.session([simlib.PYTHON, os.path.join(simlib.REPO, "sim", "interactive.py"),
                       name], timeout=120)
    host.close(keep=rc != 0)
    if rc != 0:
        print("    state kept in %s" % host.dir)
    else:
        shutil.rmtree(host.dir, ignore_errors=True)
    return rc == 0

def menuconfig(host):
    # what the person chooses in menuconfig
    shutil.copy(os.path.join(simlib.CONFIGS, "octopus-pro-h723.config"),
                os.path.join(host.state, "menuconfig.config"))

def kiauh_configs(host):
    # what KIAUH left: one config for this board's chip, one for another
    d = os.path.join(host.home, "klipper-kconfigs")
    os.makedirs(d)
    shutil.copy(os.path.join(simlib.CONFIGS, "octopus-f446.config"), d + "/octopus.config")
    shutil.copy(os.path.join(simlib.CONFIGS, "octopus-pro-h723.config"), d + "/h723.config")

def registered(host):
    host.write_registry([{"key": "octopus", "name": "Octopus", "mcu": "stm32f446xx",
                          "pattern": "usb-*_stm32f446xx_3A0039000851313433343333-if*"}])
    d = os.path.join(host.config_dir, "configs", "octopus")
    os.makedirs(d)
    shutil.copy(os.path.join(simlib.CONFIGS, "octopus-f446.config"), d + "/.config")
    # slow enough that the hangup lands while flashtool runs
    host.fault("flashtool", "slow 2")

def wrong_config(host):
    registered(host)
    shutil.copy(os.path.join(simlib.CONFIGS, "octopus-pro-h723.config"),
                os.path.join(host.config_dir, "configs", "octopus", ".config"))

def slow_build(host):
    registered(host)
    host.fault("make-build", "slow 4")

def sudo_asks(host):
    registered(host)
    host.fault("sudo", "password")

ok = fail = 0
for name, boards, prep in (
        ("wizard_add", ["octopus-f446", "sb2040", "beacon"], None),
        ("wizard_adopts_config", ["octopus-f446"], kiauh_configs),
        ("menu_add_flash_quit", ["octopus-pro-h723"], menuconfig),
        ("menu_ctrl_c_quits", ["octopus-f446"], None),
        ("menu_settings_and_config_flag", ["octopus-f446"], wrong_config),
        ("ssh_drop_during_flash", ["octopus-f446"], registered),
        ("build_live_progress", ["octopus-f446"], slow_build),
        ("flash_live_progress", ["octopus-f446"], registered),
        ("error_wraps_to_the_terminal", ["octopus-f446"], sudo_asks)):
    if run(name, boards, prep):
        ok += 1
    else:
        fail += 1
# sim/printer itself on a terminal (no host around it: it makes its own)
import subprocess
for name in ("printer_gives_a_terminal", "printer_ctrl_c_ends_the_host",
             "printer_piped_ctrl_c_ends_the_host"):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KFLASH_SIM_")}
    if subprocess.run([simlib.PYTHON, os.path.join(simlib.REPO, "sim", "interactive.py"), name],
                      env=env, timeout=300).returncode == 0:
        ok += 1
    else:
        fail += 1
print("interactive: %d passed, %d failed" % (ok, fail))
sys.exit(1 if fail else 0)
PY
