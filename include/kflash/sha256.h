/* sha256.h - SHA-256 (FIPS 180-4), for naming and checking the firmware
 * kflash keeps: the sum a printer owner can compare with sha256sum. */
#ifndef KFLASH_SHA256_H
#define KFLASH_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define KF_SHA256_HEX 65	/* 64 hex digits and the NUL */

void kf_sha256(const void *data, size_t len, uint8_t ret_sum[32]);
/* The sum as lower-case hex, as sha256sum prints it. */
void kf_sha256_hex(const void *data, size_t len, char ret_hex[KF_SHA256_HEX]);

#endif
