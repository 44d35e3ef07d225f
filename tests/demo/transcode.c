/* The built-in example for ld-nc's main job: an x86_64 program that transcodes audio.
 *
 *   transcode make IN.wav SECONDS     writes a 44.1 kHz stereo 16-bit PCM test signal
 *   transcode run IN.wav OUT.wav      downmixes to mono, resamples to 22.05 kHz with a windowed-sinc
 *                                     low-pass, normalises, encodes IMA ADPCM and writes OUT.wav
 *
 * It prints a summary with an FNV-1a hash of the output, so a run under ld-nc can be compared with
 * the native run byte for byte. Until the native-library bridge lands it is linked statically and
 * does all its work in its own code; later the same job runs through FFmpeg's native libraries. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void put16(unsigned char *p, unsigned v) { p[0] = v; p[1] = v >> 8; }
static void put32(unsigned char *p, uint32_t v) { put16(p, v & 0xffff); put16(p + 2, v >> 16); }
static unsigned get16(const unsigned char *p) { return p[0] | p[1] << 8; }
static uint32_t get32(const unsigned char *p) { return get16(p) | (uint32_t)get16(p + 2) << 16; }

static int make(const char *path, double seconds) {
    const int rate = 44100;
    long n = (long)(seconds * rate);
    unsigned char *buf = malloc(44 + n * 4);
    if (!buf) return 1;
    memcpy(buf, "RIFF", 4); put32(buf + 4, 36 + n * 4); memcpy(buf + 8, "WAVEfmt ", 8);
    put32(buf + 16, 16); put16(buf + 20, 1); put16(buf + 22, 2); put32(buf + 24, rate);
    put32(buf + 28, rate * 4); put16(buf + 32, 4); put16(buf + 34, 16);
    memcpy(buf + 36, "data", 4); put32(buf + 40, n * 4);
    uint32_t noise = 12345;
    for (long i = 0; i < n; i++) {
        double t = (double)i / rate;
        double env = 0.5 + 0.5 * sin(2 * M_PI * 0.5 * t);
        noise = noise * 1664525u + 1013904223u;
        double l = 0.4 * sin(2 * M_PI * 440 * t) + 0.2 * sin(2 * M_PI * 660 * t) * env +
                   0.05 * ((double)(noise >> 8) / (1 << 24) - 0.5);
        double r = 0.4 * sin(2 * M_PI * 554.37 * t) + 0.15 * sin(2 * M_PI * 15000 * t);
        put16(buf + 44 + i * 4, (unsigned)(int16_t)lrint(l * 32767));
        put16(buf + 44 + i * 4 + 2, (unsigned)(int16_t)lrint(r * 32767));
    }
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, 44 + n * 4, f) != (size_t)(44 + n * 4) || fclose(f)) {
        perror(path);
        return 1;
    }
    free(buf);
    printf("wrote %s: %ld frames, 44100 Hz stereo s16\n", path, n);
    return 0;
}

/* IMA ADPCM (Interactive Multimedia Association, 1992): 4 bits per sample. */
static const int ima_index[16] = {-1, -1, -1, -1, 2, 4, 6, 8, -1, -1, -1, -1, 2, 4, 6, 8};
static const int ima_step[89] = {
    7, 8, 9, 10, 11, 12, 13, 14, 16, 17, 19, 21, 23, 25, 28, 31, 34, 37, 41, 45, 50, 55, 60, 66,
    73, 80, 88, 97, 107, 118, 130, 143, 157, 173, 190, 209, 230, 253, 279, 307, 337, 371, 408, 449,
    494, 544, 598, 658, 724, 796, 876, 963, 1060, 1166, 1282, 1411, 1552, 1707, 1878, 2066, 2272,
    2499, 2749, 3024, 3327, 3660, 4026, 4428, 4871, 5358, 5894, 6484, 7132, 7845, 8630, 9493,
    10442, 11487, 12635, 13899, 15289, 16818, 18500, 20350, 22385, 24623, 27086, 29794, 32767};

static int ima_encode(int sample, int *pred, int *index) {
    int step = ima_step[*index], diff = sample - *pred, code = 0;
    if (diff < 0) { code = 8; diff = -diff; }
    int delta = step >> 3;
    if (diff >= step) { code |= 4; diff -= step; delta += step; }
    if (diff >= step >> 1) { code |= 2; diff -= step >> 1; delta += step >> 1; }
    if (diff >= step >> 2) { code |= 1; delta += step >> 2; }
    *pred += (code & 8) ? -delta : delta;
    if (*pred > 32767) *pred = 32767;
    if (*pred < -32768) *pred = -32768;
    *index += ima_index[code];
    if (*index < 0) *index = 0;
    if (*index > 88) *index = 88;
    return code;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int run(const char *in, const char *out) {
    FILE *f = fopen(in, "rb");
    if (!f) { perror(in); return 1; }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *wav = malloc(size);
    if (!wav || fread(wav, 1, size, f) != (size_t)size) { fprintf(stderr, "%s: short read\n", in); return 1; }
    fclose(f);
    if (size < 44 || memcmp(wav, "RIFF", 4) || memcmp(wav + 8, "WAVE", 4) || get16(wav + 20) != 1 ||
        get16(wav + 22) != 2 || get16(wav + 34) != 16) {
        fprintf(stderr, "%s: not a 16-bit stereo PCM WAV\n", in);
        return 1;
    }
    uint32_t rate = get32(wav + 24), frames = get32(wav + 40) / 4;
    if (44 + (long)frames * 4 > size) { fprintf(stderr, "%s: truncated\n", in); return 1; }

    /* Downmix to mono doubles. */
    double *mono = malloc(sizeof(double) * frames);
    for (uint32_t i = 0; i < frames; i++) {
        int16_t l = (int16_t)get16(wav + 44 + i * 4), r = (int16_t)get16(wav + 46 + i * 4);
        mono[i] = (l + r) / 65536.0;
    }
    /* Halve the rate through a 63-tap Blackman-windowed sinc low-pass at 0.45 of the new Nyquist. */
    enum { TAPS = 63 };
    double h[TAPS], sum = 0;
    for (int k = 0; k < TAPS; k++) {
        double x = k - (TAPS - 1) / 2.0, fc = 0.45 * 0.5;
        double s = x == 0 ? 2 * fc : sin(2 * M_PI * fc * x) / (M_PI * x);
        double w = 0.42 - 0.5 * cos(2 * M_PI * k / (TAPS - 1)) + 0.08 * cos(4 * M_PI * k / (TAPS - 1));
        h[k] = s * w;
        sum += h[k];
    }
    for (int k = 0; k < TAPS; k++) h[k] /= sum;
    uint32_t outn = frames / 2;
    double *res = malloc(sizeof(double) * (outn ? outn : 1));
    double peak = 0;
    for (uint32_t j = 0; j < outn; j++) {
        double acc = 0;
        long c = (long)j * 2;
        for (int k = 0; k < TAPS; k++) {
            long i = c + k - (TAPS - 1) / 2;
            if (i >= 0 && i < (long)frames) acc += h[k] * mono[i];
        }
        res[j] = acc;
        if (fabs(acc) > peak) peak = fabs(acc);
    }
    /* Normalise to -1 dBFS; report the median absolute level as a robust loudness figure. */
    double gain = peak > 0 ? pow(10, -1 / 20.0) / peak : 1;
    double *mag = malloc(sizeof(double) * (outn ? outn : 1));
    double energy = 0;
    for (uint32_t j = 0; j < outn; j++) {
        res[j] *= gain;
        mag[j] = fabs(res[j]);
        energy += res[j] * res[j];
    }
    qsort(mag, outn, sizeof(double), cmp_double);
    double median = outn ? mag[outn / 2] : 0, rms = outn ? sqrt(energy / outn) : 0;

    /* IMA ADPCM, one mono block per 1017 samples (block align 512, as Microsoft's WAV profile). */
    const uint32_t spb = 1017, align = 512;
    uint32_t blocks = (outn + spb - 1) / spb;
    uint32_t datasize = blocks * align;
    unsigned char *o = calloc(1, 60 + datasize);
    memcpy(o, "RIFF", 4); put32(o + 4, 52 + datasize); memcpy(o + 8, "WAVEfmt ", 8);
    put32(o + 16, 20); put16(o + 20, 0x11); put16(o + 22, 1); put32(o + 24, rate / 2);
    put32(o + 28, (rate / 2) * align / spb); put16(o + 32, align); put16(o + 34, 4);
    put16(o + 36, 2); put16(o + 38, spb); memcpy(o + 40, "fact", 4); put32(o + 44, 4);
    put32(o + 48, outn); memcpy(o + 52, "data", 4); put32(o + 56, datasize);
    int index = 0;
    for (uint32_t b = 0; b < blocks; b++) {
        unsigned char *blk = o + 60 + b * align;
        uint32_t s0 = b * spb;
        int pred = (int)lrint(res[s0] * 32767);
        put16(blk, (unsigned)(int16_t)pred); blk[2] = index; blk[3] = 0;
        for (uint32_t k = 1; k < spb; k++) {
            uint32_t s = s0 + k;
            int v = s < outn ? (int)lrint(res[s] * 32767) : 0;
            int code = ima_encode(v, &pred, &index);
            unsigned pos = 4 + (k - 1) / 2;
            blk[pos] |= (k - 1) % 2 ? code << 4 : code;
        }
    }
    uint64_t hash = 1469598103934665603ull;
    for (uint32_t i = 0; i < 60 + datasize; i++) hash = (hash ^ o[i]) * 1099511628211ull;
    f = fopen(out, "wb");
    if (!f || fwrite(o, 1, 60 + datasize, f) != 60 + datasize || fclose(f)) { perror(out); return 1; }
    printf("in:  %u frames, %u Hz stereo s16\n", frames, rate);
    printf("out: %u samples, %u Hz mono IMA ADPCM, %u bytes\n", outn, rate / 2, 60 + datasize);
    printf("gain %.4f dB, rms %.2f dBFS, median level %.2f dBFS\n", 20 * log10(gain),
           20 * log10(rms > 0 ? rms : 1e-12), 20 * log10(median > 0 ? median : 1e-12));
    printf("fnv1a %016llx\n", (unsigned long long)hash);
    free(wav); free(mono); free(res); free(mag); free(o);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[1], "make")) return make(argv[2], atof(argv[3]));
    if (argc == 4 && !strcmp(argv[1], "run")) return run(argv[2], argv[3]);
    fprintf(stderr, "usage: %s make IN.wav SECONDS | run IN.wav OUT.wav\n", argv[0]);
    return 2;
}
