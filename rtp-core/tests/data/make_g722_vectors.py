"""Makes the G.722 test vectors of tests/g722_ffmpeg.rs (run in tests/data/):

    python3 make_g722_vectors.py
    ffmpeg -i chirp16k.wav -ar 16000 -acodec g722 -f g722 chirp16k.g722
    ffmpeg -f g722 -i chirp16k.g722 -f s16le chirp16k.g722.s16le
    ffmpeg -f g722 -i random.g722 -f s16le random.g722.s16le

The committed outputs came from FFmpeg 5.1.9 (Debian 12).
"""
import math, struct, wave, random
rate = 16000
n = rate
s = []
for i in range(n):
    t = i / rate
    if i < 12000:
        # linear chirp 100 Hz -> 7500 Hz over 0.75 s at 0.8 full scale
        f0, f1, T = 100.0, 7500.0, 0.75
        ph = 2 * math.pi * (f0 * t + (f1 - f0) * t * t / (2 * T))
        v = 0.8 * math.sin(ph)
    else:
        # a full-scale 500 Hz square wave with a 3 kHz tone on top: clipping paths
        v = (1.0 if math.sin(2 * math.pi * 500 * t) >= 0 else -1.0) + 0.3 * math.sin(2 * math.pi * 3000 * t)
    s.append(max(-32768, min(32767, int(round(v * 32767)))))
w = wave.open("chirp16k.wav", "wb")
w.setnchannels(1); w.setsampwidth(2); w.setframerate(rate)
w.writeframes(struct.pack("<%dh" % n, *s))
w.close()
r = random.Random(722)
open("random.g722", "wb").write(bytes(r.randrange(256) for _ in range(4000)))
