/*
 * tlf_decode_main.c - host-side driver for tlf_display.c: decodes a captured byte stream and
 * prints one canonical line per event, exactly as firmware_bridge.device.decode_stream does in
 * Python. The test suite compiles it with tlf_display.c and compares its output with the
 * test vectors' .expected files. It also shows how firmware drives the decoder.
 *
 *     cc -std=c99 -O2 -DTLF_MAX_PAYLOAD=4096 tlf_display.c tlf_decode_main.c -o tlf_decode
 *     ./tlf_decode WIDTH HEIGHT < capture.bin
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tlf_display.h"

static tlf_display disp; /* large: keep it off the stack, as firmware would */

static void print_float(const char *name, float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    if (isnan(f))
        printf(" %s=nan", name);
    else if (isinf(f))
        printf(" %s=%s/0x%08lx", name, f > 0 ? "inf" : "-inf", (unsigned long)bits);
    else
        printf(" %s=%.4f/0x%08lx", name, (double)f, (unsigned long)bits);
}

static const char *encoding_name(uint8_t e)
{
    static const char *names[] = {"NONE", "BOUNDS16", "BOUNDS_DELTA", "RLE", "LABELS2"};
    return e <= TLF_ENC_LABELS2 ? names[e] : "?";
}

static const char *status_name(uint8_t c)
{
    static const char *names[] = {"RUNNING", "NO_SIGNAL", "FROZEN", "LOW_QUALITY", "FAULT", "STARTING", "STOPPED"};
    return c <= 6 ? names[c] : "UNKNOWN";
}

static const char *drop_name(uint8_t r)
{
    static const char *names[] = {"?", "truncated", "overlong", "crc", "version", "type", "malformed"};
    return r <= TLF_DROP_MALFORMED ? names[r] : "?";
}

static void print_mask(const tlf_display *d)
{
    const tlf_header *h = &d->event_header;
    uint16_t x, y;
    printf("MASK seq=%u t=%lu capture=%lu enc=%s\n", h->seq, (unsigned long)h->time_us,
           (unsigned long)d->mask_t_capture_us, encoding_name(d->mask_encoding));
    if (d->mask_kind == TLF_MASK_BOUNDS) {
        printf("  top=");
        for (x = 0; x < d->width; x++) printf(x ? ",%u" : "%u", d->top[x]);
        printf("\n  bottom=");
        for (x = 0; x < d->width; x++) printf(x ? ",%u" : "%u", d->bottom[x]);
        printf("\n");
    } else if (d->mask_kind == TLF_MASK_LABELS) {
        unsigned long counts[4] = {0, 0, 0, 0};
        uint32_t crc = 0;
        for (y = 0; y < d->height; y++)
            for (x = 0; x < d->width; x++) {
                uint8_t v = tlf_display_label(d, x, y);
                counts[v]++;
                crc = tlf_crc32(crc, &v, 1);
            }
        printf("  labels crc=0x%08lx counts=%lu,%lu,%lu,%lu\n", (unsigned long)crc, counts[0], counts[1], counts[2],
               counts[3]);
    }
}

static void print_event(const tlf_display *d, int ev)
{
    const tlf_header *h = &d->event_header;
    const tlf_measurement *m = &d->measurement;
    size_t i;
    if (ev == TLF_EV_DROP) {
        if (d->event_drop == TLF_DROP_VERSION)
            printf("DROP version version=%u type=0x%02x seq=%u reject=%u\n", h->version, h->type, h->seq, d->event_reject);
        else if (d->event_drop >= TLF_DROP_TYPE)
            printf("DROP %s type=0x%02x seq=%u reject=%u\n", drop_name(d->event_drop), h->type, h->seq, d->event_reject);
        else
            printf("DROP %s\n", drop_name(d->event_drop));
        return;
    }
    if (ev == TLF_EV_IGNORED) {
        printf("IGNORED seq=%u type=0x%02x\n", h->seq, h->type);
        return;
    }
    switch (d->event_type) {
    case TLF_MSG_HELLO:
        printf("HELLO seq=%u t=%lu min=%u max=%u nonce=0x%08lx\n", h->seq, (unsigned long)h->time_us,
               d->hello.min_version, d->hello.max_version, (unsigned long)d->hello.nonce);
        break;
    case TLF_MSG_MEASUREMENT:
        printf("MEASUREMENT seq=%u t=%lu", h->seq, (unsigned long)h->time_us);
        print_float("thickness", m->thickness);
        print_float("spread", m->spread);
        print_float("uncertainty", m->uncertainty);
        printf(" flags=0x%08lx unit=%s model=0x%08lx capture=%lu band=%u/%u\n", (unsigned long)m->flags,
               m->unit_mm ? "mm" : "px", (unsigned long)m->model_id, (unsigned long)m->t_capture_us, m->band, m->bands);
        break;
    case TLF_MSG_MASK:
        print_mask(d);
        break;
    case TLF_MSG_STATUS:
        printf("STATUS seq=%u t=%lu code=%u(%s) detail=0x%08lx text=", h->seq, (unsigned long)h->time_us,
               d->status.code, status_name(d->status.code), (unsigned long)d->status.detail);
        for (i = 0; i < d->status.text_len; i++) printf("%02x", (unsigned char)d->status.text[i]);
        printf("\n");
        break;
    case TLF_MSG_HEARTBEAT:
        printf("HEARTBEAT seq=%u t=%lu uptime=%lu rx_ok=%lu rx_bad=%lu\n", h->seq, (unsigned long)h->time_us,
               (unsigned long)d->heartbeat.uptime_ms, (unsigned long)d->heartbeat.rx_ok,
               (unsigned long)d->heartbeat.rx_bad);
        break;
    default:
        printf("? type=0x%02x\n", d->event_type);
    }
}

int main(int argc, char **argv)
{
    int c;
    const tlf_counters *k = &disp.counters;
    if (argc == 2 && strcmp(argv[1], "--selftest") == 0) {
        /* The CRC check value, and frames the device sends, for comparison with the Python side. */
        static uint8_t out[600], big[300];
        size_t n, i;
        printf("CRC 0x%08lx\n", (unsigned long)tlf_crc32(0, (const uint8_t *)"123456789", 9));
        tlf_display_init(&disp, 320, 240);
        disp.hello.nonce = 0x01020304u;
        n = tlf_build_device_info(&disp, out, sizeof out, 60, 0x00010203u, 1000u);
        printf("DEVICE_INFO ");
        for (i = 0; i < n; i++) printf("%02x", out[i]);
        disp.reject.reason = TLF_REJECT_TYPE;
        disp.reject.version = 1;
        disp.reject.type = 0x55;
        disp.reject.seq = 7;
        n = tlf_build_reject(&disp, out, sizeof out, 2000u);
        printf("\nREJECT ");
        for (i = 0; i < n; i++) printf("%02x", out[i]);
        for (i = 0; i < sizeof big; i++) big[i] = (uint8_t)(i % 7 ? i : 0);
        n = tlf_build_frame(out, sizeof out, TLF_MSG_STATUS, 9, 3000u, big, sizeof big);
        printf("\nFRAME ");
        for (i = 0; i < n; i++) printf("%02x", out[i]);
        printf("\n");
        return 0;
    }
    if (argc != 3) {
        fprintf(stderr, "usage: %s WIDTH HEIGHT < stream.bin\n", argv[0]);
        return 2;
    }
    if (tlf_display_init(&disp, (uint16_t)atoi(argv[1]), (uint16_t)atoi(argv[2])) != 0) {
        fprintf(stderr, "display size %sx%s exceeds %ux%u\n", argv[1], argv[2], TLF_MAX_WIDTH, TLF_MAX_HEIGHT);
        return 2;
    }
    printf("DISPLAY %ux%u max_payload=%u\n", disp.width, disp.height, (unsigned)TLF_MAX_PAYLOAD);
    while ((c = getchar()) != EOF) {
        int ev = tlf_display_feed(&disp, (uint8_t)c);
        if (ev != TLF_EV_NONE) print_event(&disp, ev);
        disp.hello_pending = 0; /* a device would answer these here */
        disp.reject_pending = 0;
    }
    printf("COUNTERS ok=%lu truncated=%lu overlong=%lu crc=%lu version=%lu type=%lu malformed=%lu ignored=%lu lost=%lu\n",
           (unsigned long)k->ok, (unsigned long)k->truncated, (unsigned long)k->overlong, (unsigned long)k->crc,
           (unsigned long)k->version, (unsigned long)k->type, (unsigned long)k->malformed, (unsigned long)k->ignored,
           (unsigned long)k->lost);
    return 0;
}
