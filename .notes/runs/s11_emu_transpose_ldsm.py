# Emulation of fp8::transpose_v_block (ldmatrix.trans / stmatrix, session 11): the layout it writes equals
# the row-major transpose in pv_key_of_position order, every byte once (python3 this file).
import numpy as np
def pvk(q): return 2*(q//4) + (q&1) + 8*((q&3)>>1)
ID = lambda k, d: k*128 + d
exp = np.zeros(128*128, np.int64)
for d in range(128):
    for g in range(8):
        for q in range(16):
            exp[d*128 + ((g ^ (d & 7)) << 4) + q] = ID(16*g + pvk(q), d)
src = np.zeros(128*128, np.int64)
for r in range(128):
    for j in range(8):
        for b in range(16): src[r*128 + ((j ^ (r & 7)) << 4) + b] = ID(r, 16*j + b)
DST = 1 << 20
out = np.full(128*128, -1, np.int64); writes = np.zeros(128*128, int)
def perm(x, y, s): b = list(x) + list(y); return tuple(b[(s >> 4*i) & 7] for i in range(4))
for warp in range(4):
    lanes = range(32)
    rr = [l & 7 for l in lanes]; m = [l >> 3 for l in lanes]
    ld0 = [(8*m[l] + rr[l])*128 + (rr[l] << 4) for l in lanes]
    ld_lo = [a ^ ((2*warp) << 4) for a in ld0]; ld_hi = [a ^ ((2*warp+1) << 4) for a in ld0]
    dor = [2*rr[l] if (rr[l] < 4) == ((m[l] & 1) == 0) else 2*rr[l]+1 for l in lanes]
    st0 = [DST + (32*warp + dor[l])*128 + (((m[l] >> 1) ^ (dor[l] & 7)) << 4) for l in lanes]
    sel_e = [0x6420 if (l >> 2) < 4 else 0x7531 for l in lanes]; sel_o = [s ^ 0x1111 for s in sel_e]
    for step in range(8):
        jj, i = step // 4, step % 4
        addr = [(ld_hi[l] if jj else ld_lo[l]) + i*32*128 for l in lanes]
        regs = [[None]*4 for _ in lanes]
        for mat in range(4):
            rows = [addr[8*mat + r] for r in range(8)]
            for l in lanes:
                c, t = l >> 2, l & 3
                regs[l][mat] = (src[rows[2*t]+2*c], src[rows[2*t]+2*c+1], src[rows[2*t+1]+2*c], src[rows[2*t+1]+2*c+1])
        data = [[perm(r[0], r[1], sel_e[l]), perm(r[0], r[1], sel_o[l]), perm(r[2], r[3], sel_e[l]), perm(r[2], r[3], sel_o[l])]
                for l, r in enumerate(regs)]
        saddr = [(st0[l] ^ (i << 5)) + jj*16*128 for l in lanes]
        for mat in range(4):
            rows = [saddr[8*mat + r] for r in range(8)]
            for l in lanes:
                a = rows[l >> 2] - DST + 4*(l & 3)
                for b in range(4): out[a+b] = data[l][mat][b]; writes[a+b] += 1
print("every byte once:", (writes == 1).all(), " layout equal:", (out == exp).all())
bad = np.nonzero(out != exp)[0]
for a in bad[:8]:
    print("addr", a, "d", a//128, "pos", a%128, "want (k,d)", divmod(int(exp[a]),128), "got", divmod(int(out[a]),128))
