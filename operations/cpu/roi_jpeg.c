/* Crop-aware JPEG decoding for pureffcv's decoders (operations/cpu/jpeg.py).
 *
 * pureffcv_roi_decode decodes only the part of a JPEG that a crop needs, at a DCT scale M/8
 * (libjpeg's scale_num / scale_denom): rows above the crop are skipped
 * (jpeg_skip_scanlines: entropy-decoded, but no IDCT, upsampling or colour conversion),
 * columns outside it are cropped at iMCU granularity (jpeg_crop_scanline), rows below it
 * are never decoded. The IDCT is libjpeg-turbo's fast integer one (JDCT_IFAST) and chroma
 * upsampling the default (fancy), as FFCV's TurboJPEG call (TJFLAG_FASTDCT), so a decode at
 * scale 8/8 gives FFCV's bytes away from the cropped region's left and right edges.
 *
 * Called from Numba through ctypes (a plain C function; the Python module below exists only so
 * setuptools builds and names the shared object like any extension). Thread-safe: all state
 * is on the stack of the call.
 */
#include <Python.h>

/* x86-64: SSE2 for the resize's horizontal pass, and an AVX2 clone of the resize; elsewhere
 * (ARM, say) plain C with the same float operations, so the same bytes */
#if defined(__x86_64__) && !defined(PUREFFCV_PORTABLE)
#include <emmintrin.h>
#define PUREFFCV_SSE 1
#define PUREFFCV_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define PUREFFCV_CLONES
#endif

#include <math.h>
#include <setjmp.h>
#include <stdlib.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <jpeglib.h>

struct roi_error {
    struct jpeg_error_mgr manager;
    jmp_buf jump;
};

static void roi_error_exit(j_common_ptr cinfo) {
    struct roi_error *error = (struct roi_error *)cinfo->err;
    longjmp(error->jump, 1);
}

static void roi_output_message(j_common_ptr cinfo) {
    (void)cinfo; /* corrupt-data warnings: decode what there is, print nothing */
}

/* Decode rows [y0, y1) and (at least) columns [x0, x1) of the image scaled by
 * scale_num / 8 (1 <= scale_num <= 16; coordinates in the scaled image, whose size is
 * ceil(height * scale_num / 8) x ceil(width * scale_num / 8)) as RGB into destination.
 *
 * region receives four int64: the first decoded row (y0), the rows decoded (y1 - y0), the
 * first decoded column (x0 rounded down to the iMCU boundary) and the columns decoded (at
 * least x1 - that column); destination holds rows x columns x 3 bytes, row-major.
 *
 * Returns 0, or: -1 a libjpeg error (not a JPEG, corrupt, unsupported colour space), -2 the
 * region is empty or outside the scaled image, -3 destination (destination_size bytes) is
 * too small. */
int pureffcv_roi_decode(const unsigned char *source, uint64_t source_size,
                        unsigned char *destination, uint64_t destination_size,
                        int64_t scale_num, int64_t y0, int64_t y1, int64_t x0, int64_t x1,
                        int64_t *region) {
    struct jpeg_decompress_struct cinfo;
    struct roi_error error;
    JSAMPROW rows[16];
    int64_t status = 0;

    cinfo.err = jpeg_std_error(&error.manager);
    error.manager.error_exit = roi_error_exit;
    error.manager.output_message = roi_output_message;
    if (setjmp(error.jump)) {
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, source, (unsigned long)source_size);
    jpeg_read_header(&cinfo, TRUE);
    cinfo.out_color_space = JCS_RGB;
    cinfo.dct_method = JDCT_IFAST;
    cinfo.scale_num = (unsigned int)scale_num;
    cinfo.scale_denom = 8;
    jpeg_start_decompress(&cinfo);

    if (y0 < 0 || x0 < 0 || y1 <= y0 || x1 <= x0 || y1 > (int64_t)cinfo.output_height ||
        x1 > (int64_t)cinfo.output_width) {
        status = -2;
    } else {
        JDIMENSION column = (JDIMENSION)x0, columns = (JDIMENSION)(x1 - x0);
        if (column != 0 || columns != cinfo.output_width) {
            jpeg_crop_scanline(&cinfo, &column, &columns);
        }
        uint64_t stride = (uint64_t)columns * 3;
        if (stride * (uint64_t)(y1 - y0) > destination_size) {
            status = -3;
        } else {
            if (y0 > 0) {
                jpeg_skip_scanlines(&cinfo, (JDIMENSION)y0);
            }
            int64_t done = 0;
            while (done < y1 - y0) {
                int64_t want = y1 - y0 - done;
                if (want > 16) want = 16;
                for (int64_t r = 0; r < want; r++) {
                    rows[r] = destination + (uint64_t)(done + r) * stride;
                }
                JDIMENSION got = jpeg_read_scanlines(&cinfo, rows, (JDIMENSION)want);
                if (got == 0) break; /* truncated data: libjpeg filled what it could */
                done += got;
            }
            region[0] = y0;
            region[1] = y1 - y0;
            region[2] = column;
            region[3] = columns;
        }
    }
    jpeg_abort_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    return (int)status;
}

/* Output cell i of a resize from [start, start + count * step) covers the source
 * interval [start + i * step, start + (i + 1) * step): the source samples it overlaps
 * (first[i], taps[i] of them, at most `most`) and their weights (overlap / step; 0 for the
 * `most - taps[i]` after them). */
static void area_weights(double start, double step, int64_t count, int64_t limit, int64_t most,
                         int64_t *first, int64_t *taps, float *weights) {
    for (int64_t i = 0; i < count; i++) {
        double a = start + i * step, b = a + step;
        int64_t lo = (int64_t)floor(a), hi = (int64_t)ceil(b);
        if (lo < 0) lo = 0;
        if (hi > limit) hi = limit;
        if (hi - lo > most) hi = lo + most;
        first[i] = lo;
        taps[i] = hi - lo;
        for (int64_t k = 0; k < most; k++) weights[i * most + k] = 0;
        for (int64_t k = lo; k < hi; k++) {
            double left = a > k ? a : k, right = b < k + 1 ? b : k + 1;
            weights[i * most + (k - lo)] = (float)((right - left) / step);
        }
    }
}

/* One output row's vertical pass: line[v] = sum over k < taps of w[k] * row0[k * stride + v]
 * (the box's columns of the `taps` source rows from row0 on), summed in tap order. Inlined
 * with a constant `taps` below, so the loop over v is a plain loop the compiler vectorizes. */
static inline __attribute__((always_inline)) void vertical(const unsigned char *row0,
                                                           int64_t stride, const float *w,
                                                           int64_t taps, int64_t values,
                                                           float *line) {
    for (int64_t v = 0; v < values; v++) {
        float sum = 0;
        for (int64_t k = 0; k < taps; k++) sum += w[k] * row0[k * stride + v];
        line[v] = sum;
    }
}

/* One output row's horizontal pass: output pixel j is 0.5 + the sum over k < most of
 * weights[j * most + k] times line's pixel first[j] - column_lo + k, truncated to uint8
 * (saturating). With SSE, red, green and blue travel together in one register (a fourth lane
 * rides along, hence line's spare float at its end) and three of its four bytes are stored. */
static inline __attribute__((always_inline)) void horizontal(const float *line, int64_t column_lo,
                                                             const int64_t *first,
                                                             const float *weights, int64_t most,
                                                             int64_t out_width,
                                                             unsigned char *out) {
    for (int64_t j = 0; j < out_width; j++) {
        const float *w = weights + j * most;
        const float *pixel = line + (first[j] - column_lo) * 3;
#ifdef PUREFFCV_SSE
        __m128 sum = _mm_set1_ps(0.5f);
        for (int64_t k = 0; k < most; k++) {
            sum = _mm_add_ps(sum, _mm_mul_ps(_mm_set1_ps(w[k]), _mm_loadu_ps(pixel + 3 * k)));
        }
        __m128i value = _mm_cvttps_epi32(sum);
        value = _mm_packus_epi16(_mm_packs_epi32(value, value), value);
        int32_t rgb = _mm_cvtsi128_si32(value);
        memcpy(out + 3 * j, &rgb, 3);
#else
        for (int64_t c = 0; c < 3; c++) {
            float sum = 0.5f;
            for (int64_t k = 0; k < most; k++) sum = sum + w[k] * pixel[3 * k + c];
            out[3 * j + c] = sum <= 0 ? 0 : (sum >= 255 ? 255 : (unsigned char)sum);
        }
#endif
    }
}

/* One row of out_width RGB pixels through the normalization table: out[x, c] =
 * table[c][row[x', c]], x' = x or, when mirror, out_width - 1 - x; values of itemsize bytes
 * (4: float32, 2: float16 bits). */
static inline __attribute__((always_inline)) void looked_up(const unsigned char *row,
                                                            const void *table, int64_t itemsize,
                                                            int64_t mirror, int64_t out_width,
                                                            unsigned char *out) {
    for (int64_t x = 0; x < out_width; x++) {
        const unsigned char *pixel = row + 3 * (mirror ? out_width - 1 - x : x);
        if (itemsize == 4) {
            const float *t = table;
            float *o = (float *)out + 3 * x;
            o[0] = t[pixel[0]], o[1] = t[256 + pixel[1]], o[2] = t[512 + pixel[2]];
        } else {
            const uint16_t *t = table;
            uint16_t *o = (uint16_t *)out + 3 * x;
            o[0] = t[pixel[0]], o[1] = t[256 + pixel[1]], o[2] = t[512 + pixel[2]];
        }
    }
}

/* Area-average resize of the box [y0, y1) x [x0, x1) (fractional source coordinates) of the
 * height x width x 3 uint8 image source to out_height x out_width x 3 in destination: each
 * output pixel is the mean of the source over its cell, partly covered pixels weighted by
 * the covered fraction (OpenCV's INTER_AREA when shrinking, within one level on the pixel
 * grid, and off it too). For shrinking only (cells at least one pixel). Per output row, first
 * the vertical average of its source rows over the box's columns, then the horizontal average
 * of that one row over a fixed number of taps (zero weights past a cell's own: no mispredicted
 * loop exits); both passes are specialised for the common tap counts. On x86-64 compiled for
 * AVX2 and for plain x86-64, chosen at load time (no FMA: the same bytes either way); 5x faster
 * than OpenCV's INTER_AREA from 328 to 224 px (docs/performance.md).
 *
 * With a `table` (channels x 256 values of `itemsize` bytes: float32, or float16 bits), each
 * output row is resized into a small buffer and written to destination through the table
 * (normalization: destination[y, x, c] = table[c][row[x', c]]), mirrored (x' = out_width - 1 -
 * x) when `mirror`: operations/cpu/normalize.py's lookup_pixels, while the row is in L1.
 * Returns 0, or -1 when out of memory. */
PUREFFCV_CLONES
int pureffcv_area_resize(const unsigned char *source, int64_t height, int64_t width, double y0,
                         double y1, double x0, double x1, unsigned char *destination,
                         int64_t out_height, int64_t out_width, const void *table,
                         int64_t itemsize, int64_t mirror) {
    double step_y = (y1 - y0) / out_height, step_x = (x1 - x0) / out_width;
    int64_t most_y = (int64_t)ceil(step_y) + 1, most_x = (int64_t)ceil(step_x) + 1;
    int64_t column_lo = (int64_t)floor(x0), column_hi = (int64_t)ceil(x1);
    if (column_lo < 0) column_lo = 0;
    if (column_hi > width) column_hi = width;
    int64_t values = (column_hi > column_lo ? column_hi - column_lo : 0) * 3;
    int64_t *first_x = malloc(sizeof(int64_t) * 2 * (out_width + out_height));
    float *weights_x = malloc(sizeof(float) * (out_width * most_x + out_height * most_y));
    /* zeros past the box: the taps past a cell's own, and the horizontal pass's fourth lane */
    float *line = calloc(values + 3 * most_x + 1, sizeof(float));
    /* with a table, one output row's resized bytes before the lookup */
    unsigned char *resized = table ? malloc(out_width * 3) : NULL;
    if (!first_x || !weights_x || !line || (table && !resized)) {
        free(first_x); free(weights_x); free(line); free(resized);
        return -1;
    }
    int64_t *taps_x = first_x + out_width, *first_y = taps_x + out_width,
            *taps_y = first_y + out_height;
    float *weights_y = weights_x + out_width * most_x;
    area_weights(x0, step_x, out_width, width, most_x, first_x, taps_x, weights_x);
    area_weights(y0, step_y, out_height, height, most_y, first_y, taps_y, weights_y);
    int64_t stride = width * 3;
    for (int64_t i = 0; i < out_height; i++) {
        const unsigned char *row0 = source + first_y[i] * stride + column_lo * 3;
        const float *w = weights_y + i * most_y;
        switch (taps_y[i]) {
        case 1: vertical(row0, stride, w, 1, values, line); break;
        case 2: vertical(row0, stride, w, 2, values, line); break;
        case 3: vertical(row0, stride, w, 3, values, line); break;
        case 4: vertical(row0, stride, w, 4, values, line); break;
        default: vertical(row0, stride, w, taps_y[i], values, line);
        }
        unsigned char *out = table ? resized : destination + i * out_width * 3;
        switch (most_x) {
        case 2: horizontal(line, column_lo, first_x, weights_x, 2, out_width, out); break;
        case 3: horizontal(line, column_lo, first_x, weights_x, 3, out_width, out); break;
        case 4: horizontal(line, column_lo, first_x, weights_x, 4, out_width, out); break;
        default: horizontal(line, column_lo, first_x, weights_x, most_x, out_width, out);
        }
        if (table) looked_up(resized, table, itemsize, mirror, out_width,
                             destination + i * out_width * 3 * itemsize);
    }
    free(first_x); free(weights_x); free(line); free(resized);
    return 0;
}

/* The version of these functions' signatures (operations/cpu/native.py's ROI_ABI checks it, so
 * a stale build is refused instead of called with arguments it does not read). */
int pureffcv_roi_abi(void) { return 2; }

static struct PyModuleDef roi_jpeg_module = {
    PyModuleDef_HEAD_INIT, "_roi_jpeg",
    "Crop-aware JPEG decoding; call pureffcv_roi_decode through ctypes (operations.cpu.jpeg).",
    -1, NULL,
};

PyMODINIT_FUNC PyInit__roi_jpeg(void) { return PyModule_Create(&roi_jpeg_module); }
