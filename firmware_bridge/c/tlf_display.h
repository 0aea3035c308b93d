/*
 * tlf_display.h - device side of the TLF display link, protocol version 1.
 *
 * C99, no dynamic allocation, no dependencies beyond <stdint.h>/<stddef.h>/<string.h>.
 * The wire format is specified in ../PROTOCOL.md. Feed every received byte to
 * tlf_display_feed(); it returns an event when a frame completes and keeps the display state
 * (last measurement, mask, status, heartbeat, counters) in the tlf_display structure.
 *
 * Memory: one tlf_display holds a receive buffer of TLF_MAX_PAYLOAD + 14 bytes, two arrays of
 * TLF_MAX_WIDTH uint16 boundaries and, when TLF_LABEL_MAPS is 1, a 2-bit label map of
 * TLF_MAX_WIDTH x TLF_MAX_HEIGHT. Override the limits with -D on the compiler command line.
 *
 * Typical use in firmware:
 *
 *     static tlf_display disp;
 *     tlf_display_init(&disp, 320, 240);
 *     ...in the UART receive path (or a task draining a ring buffer):
 *     int ev = tlf_display_feed(&disp, byte);
 *     if (ev == TLF_EV_MESSAGE && disp.event_type == TLF_MSG_MEASUREMENT) redraw_value(&disp.measurement);
 *     if (disp.hello_pending) { n = tlf_build_device_info(&disp, out, sizeof out, 120, FW_VERSION, now_us); uart_send(out, n); disp.hello_pending = 0; }
 *     if (disp.reject_pending && once_per_second()) { n = tlf_build_reject(&disp, out, sizeof out, now_us); uart_send(out, n); }
 *     disp.reject_pending = 0;
 */
#ifndef TLF_DISPLAY_H
#define TLF_DISPLAY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TLF_PROTOCOL_VERSION 1u

#ifndef TLF_MAX_PAYLOAD
#define TLF_MAX_PAYLOAD 1400u /* fits BOUNDS16 at 320 columns; label maps need more */
#endif
#ifndef TLF_MAX_WIDTH
#define TLF_MAX_WIDTH 320u
#endif
#ifndef TLF_MAX_HEIGHT
#define TLF_MAX_HEIGHT 240u
#endif
#ifndef TLF_LABEL_MAPS
#define TLF_LABEL_MAPS 1 /* 0: no label-map storage, RLE and LABELS2 unsupported */
#endif

#ifndef TLF_MAX_BANDS
#define TLF_MAX_BANDS 8u /* bands of one frame kept in tlf_display.band (at most 32; deeper ones are not kept) */
#endif

#define TLF_HEADER_SIZE 10u
#define TLF_OVERHEAD 14u /* header + CRC */
#define TLF_STATUS_TEXT_MAX 64u
#define TLF_NO_BAND 0xFFFFu
#define TLF_CRC32_CHECK 0xCBF43926u /* CRC-32 of "123456789" */

enum tlf_msg_type {
    TLF_MSG_HELLO = 0x01,
    TLF_MSG_DEVICE_INFO = 0x02,
    TLF_MSG_REJECT = 0x03,
    TLF_MSG_MEASUREMENT = 0x10,
    TLF_MSG_MASK = 0x11,
    TLF_MSG_STATUS = 0x12,
    TLF_MSG_HEARTBEAT = 0x20
};

enum tlf_encoding {
    TLF_ENC_NONE = 0,
    TLF_ENC_BOUNDS16 = 1,
    TLF_ENC_BOUNDS_DELTA = 2,
    TLF_ENC_RLE = 3,
    TLF_ENC_LABELS2 = 4
};

enum tlf_event {
    TLF_EV_NONE = 0,    /* byte consumed, no frame completed */
    TLF_EV_MESSAGE = 1, /* a host message was applied; see event_type / event_header */
    TLF_EV_IGNORED = 2, /* a valid device-to-host message (DEVICE_INFO, REJECT) */
    TLF_EV_DROP = 3     /* a frame was dropped; see event_drop */
};

enum tlf_drop {
    TLF_DROP_TRUNCATED = 1,
    TLF_DROP_OVERLONG = 2,
    TLF_DROP_CRC = 3,
    TLF_DROP_VERSION = 4,
    TLF_DROP_TYPE = 5,
    TLF_DROP_MALFORMED = 6
};

enum tlf_reject_reason {
    TLF_REJECT_VERSION = 1,
    TLF_REJECT_TYPE = 2,
    TLF_REJECT_MALFORMED = 3,
    TLF_REJECT_ENCODING = 4
};

enum tlf_mask_kind { TLF_MASK_NONE = 0, TLF_MASK_BOUNDS = 1, TLF_MASK_LABELS = 2 };

typedef struct {
    uint8_t version, type;
    uint16_t seq;
    uint32_t time_us;
    uint16_t length;
} tlf_header;

typedef struct {
    float thickness, spread, uncertainty; /* NaN when not measurable / unknown */
    uint32_t flags, model_id, t_capture_us;
    uint8_t unit_mm; /* 0: image pixels (uncalibrated) */
    uint8_t band;    /* 0 = the most superficial band of the frame */
    uint8_t bands;   /* bands the frame reports (1 for the single TLF band, and for 25-byte payloads) */
} tlf_measurement;

typedef struct {
    uint8_t code;
    uint32_t detail;
    uint8_t text_len;
    char text[TLF_STATUS_TEXT_MAX + 1]; /* NUL-terminated copy */
} tlf_status;

typedef struct {
    uint32_t uptime_ms, rx_ok, rx_bad;
} tlf_heartbeat;

typedef struct {
    uint8_t min_version, max_version;
    uint32_t nonce;
} tlf_hello;

typedef struct {
    uint32_t ok, truncated, overlong, crc, version, type, malformed, ignored, lost;
} tlf_counters;

typedef struct {
    uint8_t reason, version, type;
    uint16_t seq;
} tlf_reject;

typedef struct tlf_display {
    /* configuration (tlf_display_init) */
    uint16_t width, height;
    uint16_t encodings; /* bit e: encoding e supported */

    /* framing state, private */
    uint8_t rx_state, rx_remaining, rx_zero_pending;
    uint32_t rx_len;
    uint8_t rx_buf[TLF_MAX_PAYLOAD + TLF_OVERHEAD];
    uint8_t have_expected_seq;
    uint16_t expected_seq;
    uint16_t tx_seq;

    /* the last event returned by tlf_display_feed */
    tlf_header event_header; /* valid for MESSAGE, IGNORED and for drops after the CRC check */
    uint8_t event_type;      /* message type for TLF_EV_MESSAGE */
    uint8_t event_drop;      /* enum tlf_drop for TLF_EV_DROP */
    uint8_t event_reject;    /* reject reason for the drop, 0 if none is due */

    /* display state */
    uint8_t have_measurement;
    tlf_measurement measurement; /* the last one received */
    /* the bands of the frame of the last measurement (same t_capture_us and bands), by index;
       band_seen bit i: band[i] belongs to that frame */
    tlf_measurement band[TLF_MAX_BANDS];
    uint32_t band_seen;
    uint8_t have_status;
    tlf_status status;
    tlf_heartbeat heartbeat;
    tlf_hello hello;
    uint8_t mask_kind;     /* enum tlf_mask_kind */
    uint8_t mask_encoding; /* enum tlf_encoding of the last valid mask */
    uint32_t mask_t_capture_us;
    uint16_t top[TLF_MAX_WIDTH], bottom[TLF_MAX_WIDTH];
#if TLF_LABEL_MAPS
    uint8_t labels[(TLF_MAX_WIDTH * TLF_MAX_HEIGHT + 3u) / 4u]; /* 2 bits per pixel, row-major */
#endif
    tlf_counters counters;

    /* replies the firmware owes the host; clear them after sending */
    uint8_t hello_pending;  /* send DEVICE_INFO (tlf_build_device_info) */
    uint8_t reject_pending; /* send REJECT (tlf_build_reject), at most once per second */
    tlf_reject reject;
} tlf_display;

/* Returns 0, or -1 if width/height exceed TLF_MAX_WIDTH/TLF_MAX_HEIGHT or are 0. */
int tlf_display_init(tlf_display *d, uint16_t width, uint16_t height);

/* Consume one received byte; returns enum tlf_event. */
int tlf_display_feed(tlf_display *d, uint8_t byte);

/* Label of pixel (x, y) of the current label map (0..3); 0 without a label map. */
uint8_t tlf_display_label(const tlf_display *d, uint16_t x, uint16_t y);

/* CRC-32 (IEEE 802.3, as zlib): start with crc = 0, feed pieces, the result is final. */
uint32_t tlf_crc32(uint32_t crc, const uint8_t *p, size_t n);

/* COBS-encode n bytes into out (capacity cap); returns the length, 0 if it does not fit. */
size_t tlf_cobs_encode(const uint8_t *in, size_t n, uint8_t *out, size_t cap);

/* A whole wire frame: 0x00, COBS(header, payload, CRC), 0x00. Returns its length, 0 if cap is short. */
size_t tlf_build_frame(uint8_t *out, size_t cap, uint8_t type, uint16_t seq, uint32_t time_us,
                       const uint8_t *payload, uint16_t len);

/* Replies and heartbeat, using and advancing d->tx_seq. Each returns the frame length or 0. */
size_t tlf_build_device_info(tlf_display *d, uint8_t *out, size_t cap, uint16_t max_rate_hz,
                             uint32_t firmware, uint32_t time_us);
size_t tlf_build_reject(tlf_display *d, uint8_t *out, size_t cap, uint32_t time_us);
size_t tlf_build_heartbeat(tlf_display *d, uint8_t *out, size_t cap, uint32_t uptime_ms, uint32_t time_us);

#ifdef __cplusplus
}
#endif
#endif /* TLF_DISPLAY_H */
