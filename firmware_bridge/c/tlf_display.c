/*
 * tlf_display.c - device side of the TLF display link, protocol version 1 (see tlf_display.h).
 *
 * Receiving is a byte state machine: HUNT (discard up to a 0x00), CODE (next byte is a COBS
 * code byte or the delimiter), DATA (inside a COBS block). A completed frame is checked in the
 * order of PROTOCOL.md 3.1 (length, CRC, version, type, payload) and applied to the display
 * state only when every check passes. Masks are validated in a dry run before they replace the
 * current one, so a malformed mask never leaves a half-drawn band.
 */
#include "tlf_display.h"

#include <string.h>

enum { RX_HUNT = 0, RX_CODE = 1, RX_DATA = 2 };

#define RX_CAP (TLF_MAX_PAYLOAD + TLF_OVERHEAD)

/* ---- little-endian field access ---------------------------------------------------------- */

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | ((uint16_t)p[1] << 8)); }

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static float rdf32(const uint8_t *p)
{
    uint32_t u = rd32(p);
    float f;
    memcpy(&f, &u, sizeof f); /* IEEE 754 binary32 with the integer byte order */
    return f;
}

static void wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* ---- CRC-32, reflected polynomial 0xEDB88320, nibble table (64 bytes of ROM) ------------ */

static const uint32_t crc_nibble[16] = {
    0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u, 0x4DB26158u, 0x5005713Cu,
    0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu, 0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu};

uint32_t tlf_crc32(uint32_t crc, const uint8_t *p, size_t n)
{
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        crc = (crc >> 4) ^ crc_nibble[crc & 15u];
        crc = (crc >> 4) ^ crc_nibble[crc & 15u];
    }
    return ~crc;
}

/* ---- labels ------------------------------------------------------------------------------- */

uint8_t tlf_display_label(const tlf_display *d, uint16_t x, uint16_t y)
{
#if TLF_LABEL_MAPS
    uint32_t i;
    if (d->mask_kind != TLF_MASK_LABELS || x >= d->width || y >= d->height) return 0;
    i = (uint32_t)y * d->width + x;
    return (uint8_t)((d->labels[i >> 2] >> ((i & 3u) * 2u)) & 3u);
#else
    (void)d; (void)x; (void)y;
    return 0;
#endif
}

/* ---- init --------------------------------------------------------------------------------- */

int tlf_display_init(tlf_display *d, uint16_t width, uint16_t height)
{
    memset(d, 0, sizeof *d);
    if (width == 0 || height == 0 || width > TLF_MAX_WIDTH || height > TLF_MAX_HEIGHT) return -1;
    d->width = width;
    d->height = height;
    d->encodings = (1u << TLF_ENC_NONE) | (1u << TLF_ENC_BOUNDS16) | (1u << TLF_ENC_BOUNDS_DELTA);
#if TLF_LABEL_MAPS
    d->encodings |= (1u << TLF_ENC_RLE) | (1u << TLF_ENC_LABELS2);
#endif
    d->rx_state = RX_HUNT;
    return 0;
}

/* ---- mask decoding: each decoder validates when apply == 0 and writes when apply == 1 ----- */

static int column_ok(int32_t top, int32_t thick, uint16_t height)
{
    return top >= 0 && thick >= 1 && top + thick <= (int32_t)height;
}

static int mask_bounds16(tlf_display *d, const uint8_t *p, uint32_t n, int apply)
{
    uint16_t x, w = d->width;
    if (n != 4u * w) return -1;
    for (x = 0; x < w; x++) {
        uint16_t t = rd16(p + 2u * x), b = rd16(p + 2u * w + 2u * x);
        if (t == TLF_NO_BAND && b == TLF_NO_BAND) {
            /* no band */
        } else if (!(t < b && b <= d->height)) {
            return -1;
        }
        if (apply) {
            d->top[x] = t;
            d->bottom[x] = b;
        }
    }
    return 0;
}

static int mask_delta(tlf_display *d, const uint8_t *p, uint32_t n, int apply)
{
    int32_t top = 0, thick = 0;
    int have_band = 0;
    uint32_t col = 0, i = 0, w = d->width, k;
    while (col < w) {
        uint8_t b;
        if (i >= n) return -1;
        b = p[i];
        if (b == 0x00u || b == 0x02u) {
            uint8_t run;
            if (i + 1u >= n) return -1;
            run = p[i + 1u];
            if (run == 0 || col + run > w) return -1;
            if (b == 0x02u && !have_band) return -1;
            if (apply) {
                for (k = col; k < col + run; k++) {
                    d->top[k] = b == 0x02u ? (uint16_t)top : TLF_NO_BAND;
                    d->bottom[k] = b == 0x02u ? (uint16_t)(top + thick) : TLF_NO_BAND;
                }
            }
            col += run;
            i += 2u;
            continue;
        }
        if (b == 0x01u) {
            if (i + 5u > n) return -1;
            top = rd16(p + i + 1u);
            thick = rd16(p + i + 3u);
            i += 5u;
        } else if (b < 0x10u) {
            return -1;
        } else {
            top += (int32_t)(b >> 4) - 8;
            thick += (int32_t)(b & 15u) - 8;
            i += 1u;
        }
        if (!column_ok(top, thick, d->height)) return -1;
        have_band = 1;
        if (apply) {
            d->top[col] = (uint16_t)top;
            d->bottom[col] = (uint16_t)(top + thick);
        }
        col++;
    }
    return i == n ? 0 : -1;
}

#if TLF_LABEL_MAPS
static void set_label(tlf_display *d, uint32_t i, uint8_t v)
{
    uint8_t shift = (uint8_t)((i & 3u) * 2u);
    d->labels[i >> 2] = (uint8_t)((d->labels[i >> 2] & ~(3u << shift)) | ((uint32_t)v << shift));
}

static int mask_rle(tlf_display *d, const uint8_t *p, uint32_t n, int apply)
{
    uint32_t total = (uint32_t)d->width * d->height, pos = 0, i = 0, run, k;
    while (i < n) {
        uint8_t b = p[i];
        run = b & 0x3Fu;
        if (run) {
            i += 1u;
        } else {
            if (i + 3u > n) return -1;
            run = 64u + rd16(p + i + 1u);
            i += 3u;
        }
        if (run > total - pos) return -1;
        if (apply)
            for (k = 0; k < run; k++) set_label(d, pos + k, (uint8_t)(b >> 6));
        pos += run;
    }
    return pos == total ? 0 : -1;
}

static int mask_labels2(tlf_display *d, const uint8_t *p, uint32_t n, int apply)
{
    uint32_t need = ((uint32_t)d->width * d->height + 3u) / 4u;
    if (n != need) return -1;
    if (apply) memcpy(d->labels, p, need);
    return 0;
}
#endif

/* Returns 0 when applied, or a reject reason. */
static int apply_mask(tlf_display *d, const uint8_t *p, uint16_t n)
{
    uint8_t enc;
    int (*decode)(tlf_display *, const uint8_t *, uint32_t, int) = 0;
    if (n < 9u) return TLF_REJECT_MALFORMED;
    if (rd16(p + 4) != d->width || rd16(p + 6) != d->height) return TLF_REJECT_MALFORMED;
    enc = p[8];
    if (enc > TLF_ENC_LABELS2 || !((d->encodings >> enc) & 1u)) return TLF_REJECT_ENCODING;
    switch (enc) {
    case TLF_ENC_BOUNDS16: decode = mask_bounds16; break;
    case TLF_ENC_BOUNDS_DELTA: decode = mask_delta; break;
#if TLF_LABEL_MAPS
    case TLF_ENC_RLE: decode = mask_rle; break;
    case TLF_ENC_LABELS2: decode = mask_labels2; break;
#endif
    default: break; /* NONE */
    }
    if (decode) {
        if (decode(d, p + 9, (uint32_t)n - 9u, 0) != 0) return TLF_REJECT_MALFORMED;
        decode(d, p + 9, (uint32_t)n - 9u, 1);
        d->mask_kind = (enc == TLF_ENC_RLE || enc == TLF_ENC_LABELS2) ? TLF_MASK_LABELS : TLF_MASK_BOUNDS;
    } else {
        if (n != 9u) return TLF_REJECT_MALFORMED;
        d->mask_kind = TLF_MASK_NONE;
    }
    d->mask_encoding = enc;
    d->mask_t_capture_us = rd32(p);
    return 0;
}

/* ---- frame completion ----------------------------------------------------------------------- */

static int drop(tlf_display *d, uint8_t reason, uint8_t reject)
{
    switch (reason) {
    case TLF_DROP_TRUNCATED: d->counters.truncated++; break;
    case TLF_DROP_OVERLONG: d->counters.overlong++; break;
    case TLF_DROP_CRC: d->counters.crc++; break;
    case TLF_DROP_VERSION: d->counters.version++; break;
    case TLF_DROP_TYPE: d->counters.type++; break;
    default: d->counters.malformed++; break;
    }
    d->event_drop = reason;
    d->event_reject = reject;
    if (reject) {
        d->reject_pending = 1;
        d->reject.reason = reject;
        d->reject.version = d->event_header.version;
        d->reject.type = d->event_header.type;
        d->reject.seq = d->event_header.seq;
    }
    return TLF_EV_DROP;
}

static int finish(tlf_display *d)
{
    const uint8_t *b = d->rx_buf;
    const uint8_t *p = b + TLF_HEADER_SIZE;
    uint32_t n = d->rx_len;
    tlf_header *h = &d->event_header;
    int reject;

    memset(h, 0, sizeof *h);
    d->event_type = 0;
    if (n < TLF_OVERHEAD) return drop(d, TLF_DROP_TRUNCATED, 0);
    if (n < TLF_OVERHEAD + (uint32_t)rd16(b + 8)) return drop(d, TLF_DROP_TRUNCATED, 0);
    if (n > TLF_OVERHEAD + (uint32_t)rd16(b + 8)) return drop(d, TLF_DROP_OVERLONG, 0);
    if (tlf_crc32(0, b, n - 4u) != rd32(b + n - 4u)) return drop(d, TLF_DROP_CRC, 0);
    h->version = b[0];
    h->type = b[1];
    h->seq = rd16(b + 2);
    h->time_us = rd32(b + 4);
    h->length = rd16(b + 8);
    if (h->version != TLF_PROTOCOL_VERSION) return drop(d, TLF_DROP_VERSION, TLF_REJECT_VERSION);

    if (h->type != TLF_MSG_HELLO && d->have_expected_seq) {
        uint16_t gap = (uint16_t)(h->seq - d->expected_seq);
        if (gap != 0 && gap < 0x8000u) d->counters.lost += gap;
    }
    d->have_expected_seq = 1;
    d->expected_seq = (uint16_t)(h->seq + 1u);

    switch (h->type) {
    case TLF_MSG_HELLO:
        if (h->length < 6u || p[0] > p[1]) return drop(d, TLF_DROP_MALFORMED, TLF_REJECT_MALFORMED);
        d->hello.min_version = p[0];
        d->hello.max_version = p[1];
        d->hello.nonce = rd32(p + 2);
        if (p[0] <= TLF_PROTOCOL_VERSION && TLF_PROTOCOL_VERSION <= p[1]) {
            d->hello_pending = 1;
        } else {
            d->reject_pending = 1;
            d->reject.reason = TLF_REJECT_VERSION;
            d->reject.version = h->version;
            d->reject.type = h->type;
            d->reject.seq = h->seq;
        }
        break;
    case TLF_MSG_DEVICE_INFO:
    case TLF_MSG_REJECT:
        d->counters.ignored++;
        return TLF_EV_IGNORED;
    case TLF_MSG_MEASUREMENT: {
        uint8_t band = 0, bands = 1;
        uint32_t t_capture_us;
        if (h->length < 25u || p[24] > 1u) return drop(d, TLF_DROP_MALFORMED, TLF_REJECT_MALFORMED);
        if (h->length >= 27u) { /* the band fields; a 25-byte payload is band 0 of 1 */
            band = p[25];
            bands = p[26];
            if (bands == 0u || band >= bands) return drop(d, TLF_DROP_MALFORMED, TLF_REJECT_MALFORMED);
        }
        t_capture_us = rd32(p + 20);
        if (!d->have_measurement || t_capture_us != d->measurement.t_capture_us || bands != d->measurement.bands)
            d->band_seen = 0; /* a new frame */
        d->measurement.thickness = rdf32(p);
        d->measurement.spread = rdf32(p + 4);
        d->measurement.uncertainty = rdf32(p + 8);
        d->measurement.flags = rd32(p + 12);
        d->measurement.model_id = rd32(p + 16);
        d->measurement.t_capture_us = t_capture_us;
        d->measurement.unit_mm = p[24];
        d->measurement.band = band;
        d->measurement.bands = bands;
        if (band < TLF_MAX_BANDS) {
            d->band[band] = d->measurement;
            d->band_seen |= (uint32_t)1u << band;
        }
        d->have_measurement = 1;
        break;
    }
    case TLF_MSG_MASK:
        reject = apply_mask(d, p, h->length);
        if (reject) return drop(d, TLF_DROP_MALFORMED, (uint8_t)reject);
        break;
    case TLF_MSG_STATUS:
        if (h->length < 5u || h->length > 5u + TLF_STATUS_TEXT_MAX) return drop(d, TLF_DROP_MALFORMED, TLF_REJECT_MALFORMED);
        d->status.code = p[0];
        d->status.detail = rd32(p + 1);
        d->status.text_len = (uint8_t)(h->length - 5u);
        memcpy(d->status.text, p + 5, d->status.text_len);
        d->status.text[d->status.text_len] = '\0';
        d->have_status = 1;
        break;
    case TLF_MSG_HEARTBEAT:
        if (h->length < 12u) return drop(d, TLF_DROP_MALFORMED, TLF_REJECT_MALFORMED);
        d->heartbeat.uptime_ms = rd32(p);
        d->heartbeat.rx_ok = rd32(p + 4);
        d->heartbeat.rx_bad = rd32(p + 8);
        break;
    default:
        return drop(d, TLF_DROP_TYPE, TLF_REJECT_TYPE);
    }
    d->counters.ok++;
    d->event_type = h->type;
    return TLF_EV_MESSAGE;
}

static void begin(tlf_display *d)
{
    d->rx_state = RX_CODE;
    d->rx_len = 0;
    d->rx_remaining = 0;
    d->rx_zero_pending = 0;
}

static int overflow(tlf_display *d)
{
    memset(&d->event_header, 0, sizeof d->event_header);
    d->rx_state = RX_HUNT;
    d->rx_len = 0;
    return drop(d, TLF_DROP_OVERLONG, 0);
}

int tlf_display_feed(tlf_display *d, uint8_t byte)
{
    int ev;
    switch (d->rx_state) {
    case RX_HUNT:
        if (byte == 0) begin(d);
        return TLF_EV_NONE;
    case RX_CODE:
        if (byte == 0) {
            ev = d->rx_len ? finish(d) : TLF_EV_NONE;
            begin(d);
            return ev;
        }
        if (d->rx_zero_pending) {
            if (d->rx_len >= RX_CAP) return overflow(d);
            d->rx_buf[d->rx_len++] = 0;
        }
        d->rx_remaining = (uint8_t)(byte - 1u);
        d->rx_zero_pending = byte != 0xFFu;
        d->rx_state = d->rx_remaining ? RX_DATA : RX_CODE;
        return TLF_EV_NONE;
    default: /* RX_DATA */
        if (byte == 0) {
            memset(&d->event_header, 0, sizeof d->event_header);
            begin(d);
            return drop(d, TLF_DROP_TRUNCATED, 0);
        }
        if (d->rx_len >= RX_CAP) return overflow(d);
        d->rx_buf[d->rx_len++] = byte;
        if (--d->rx_remaining == 0) d->rx_state = RX_CODE;
        return TLF_EV_NONE;
    }
}

/* ---- sending -------------------------------------------------------------------------------- */

/* A COBS writer fed one byte at a time, so a frame is encoded straight from its pieces. */
typedef struct {
    uint8_t *out;
    size_t cap, o, code_at;
    uint8_t code, full, err;
} cobs_writer;

static void cw_start(cobs_writer *w, uint8_t *out, size_t cap)
{
    w->out = out;
    w->cap = cap;
    w->code_at = 0;
    w->o = 1;
    w->code = 1;
    w->full = 0;
    w->err = cap < 1;
}

static void cw_close_block(cobs_writer *w)
{
    w->out[w->code_at] = w->code;
    w->code = 1;
    if (w->o >= w->cap) {
        w->err = 1;
        return;
    }
    w->code_at = w->o++;
}

static void cw_put(cobs_writer *w, uint8_t b)
{
    if (w->err) return;
    w->full = 0;
    if (b == 0) {
        cw_close_block(w);
        return;
    }
    if (w->o >= w->cap) {
        w->err = 1;
        return;
    }
    w->out[w->o++] = b;
    if (++w->code == 0xFFu) {
        cw_close_block(w);
        w->full = 1;
    }
}

/* Returns the encoded length, or 0 on overflow. */
static size_t cw_finish(cobs_writer *w)
{
    if (w->err) return 0;
    if (w->full) return w->o - 1u; /* a full block ended the data: no code byte follows it */
    w->out[w->code_at] = w->code;
    return w->o;
}

size_t tlf_cobs_encode(const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
    cobs_writer w;
    size_t i;
    cw_start(&w, out, cap);
    for (i = 0; i < n; i++) cw_put(&w, in[i]);
    return cw_finish(&w);
}

size_t tlf_build_frame(uint8_t *out, size_t cap, uint8_t type, uint16_t seq, uint32_t time_us,
                       const uint8_t *payload, uint16_t len)
{
    uint8_t hdr[TLF_HEADER_SIZE], crc_le[4];
    cobs_writer w;
    size_t i, enc;
    uint32_t crc;
    if (cap < 3u) return 0;
    hdr[0] = TLF_PROTOCOL_VERSION;
    hdr[1] = type;
    wr16(hdr + 2, seq);
    wr32(hdr + 4, time_us);
    wr16(hdr + 8, len);
    crc = tlf_crc32(0, hdr, sizeof hdr);
    crc = tlf_crc32(crc, payload, len);
    wr32(crc_le, crc);
    out[0] = 0;
    cw_start(&w, out + 1, cap - 2u);
    for (i = 0; i < sizeof hdr; i++) cw_put(&w, hdr[i]);
    for (i = 0; i < len; i++) cw_put(&w, payload[i]);
    for (i = 0; i < 4u; i++) cw_put(&w, crc_le[i]);
    enc = cw_finish(&w);
    if (!enc) return 0;
    out[1 + enc] = 0;
    return enc + 2u;
}

size_t tlf_build_device_info(tlf_display *d, uint8_t *out, size_t cap, uint16_t max_rate_hz,
                             uint32_t firmware, uint32_t time_us)
{
    uint8_t p[19];
    p[0] = TLF_PROTOCOL_VERSION;
    wr16(p + 1, d->width);
    wr16(p + 3, d->height);
    wr16(p + 5, d->encodings);
    wr16(p + 7, max_rate_hz);
    wr16(p + 9, (uint16_t)(TLF_MAX_PAYLOAD > 0xFFFFu ? 0xFFFFu : TLF_MAX_PAYLOAD));
    wr32(p + 11, d->hello.nonce);
    wr32(p + 15, firmware);
    return tlf_build_frame(out, cap, TLF_MSG_DEVICE_INFO, d->tx_seq++, time_us, p, sizeof p);
}

size_t tlf_build_reject(tlf_display *d, uint8_t *out, size_t cap, uint32_t time_us)
{
    uint8_t p[6];
    p[0] = d->reject.reason;
    p[1] = d->reject.version;
    p[2] = d->reject.type;
    wr16(p + 3, d->reject.seq);
    p[5] = TLF_PROTOCOL_VERSION;
    return tlf_build_frame(out, cap, TLF_MSG_REJECT, d->tx_seq++, time_us, p, sizeof p);
}

size_t tlf_build_heartbeat(tlf_display *d, uint8_t *out, size_t cap, uint32_t uptime_ms, uint32_t time_us)
{
    uint8_t p[12];
    const tlf_counters *c = &d->counters;
    wr32(p, uptime_ms);
    wr32(p + 4, c->ok);
    wr32(p + 8, c->truncated + c->overlong + c->crc + c->version + c->type + c->malformed);
    return tlf_build_frame(out, cap, TLF_MSG_HEARTBEAT, d->tx_seq++, time_us, p, sizeof p);
}
