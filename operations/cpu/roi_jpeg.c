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

#include <setjmp.h>
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

static struct PyModuleDef roi_jpeg_module = {
    PyModuleDef_HEAD_INIT, "_roi_jpeg",
    "Crop-aware JPEG decoding; call pureffcv_roi_decode through ctypes (operations.cpu.jpeg).",
    -1, NULL,
};

PyMODINIT_FUNC PyInit__roi_jpeg(void) { return PyModule_Create(&roi_jpeg_module); }
