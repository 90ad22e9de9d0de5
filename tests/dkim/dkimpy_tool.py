#!/usr/bin/python3
# The dkimpy side of t2t's DKIM differential test and benchmark (Debian python3-dkim), offline:
# keys come from a "name value" file, or from a DNS server, never from the Internet.
#   dkimpy_tool.py sign MANIFEST           each line: path selector domain keyfile alg hcanon bcanon length identity
#                                          (identity "-" for none); the file gets the signature prepended
#   dkimpy_tool.py verify KEYFILE LIST     prints "path<TAB>verdict verdict ..." per file of LIST
#   dkimpy_tool.py bench SERVER:PORT LIST [PASSES]  verifies every file with keys from that DNS server (cached
#                                          per name, as t2t's verifier caches them); prints the count,
#                                          the passes, wall seconds and CPU seconds of the best pass
import sys, time, base64
import dkim

def load_keys(path):
    keys = {}
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\r\n")
        if not line.strip() or line.lstrip().startswith(("#", ";")):
            continue
        name, _, txt = line.partition(" ")
        keys[name.strip().lower().rstrip(".") + "."] = txt.strip().encode()
    return keys

def verdicts(msg, dnsfunc):
    n = sum(1 for h in dkim.DKIM(msg).headers if h[0].lower() == b"dkim-signature")
    if n == 0:
        return ["none"]
    out = []
    for i in range(n):
        try:
            out.append("pass" if dkim.DKIM(msg, minkey=1024).verify(idx=i, dnsfunc=dnsfunc) else "fail")
        except Exception as e:   # dkimpy raises for permanent errors, and sometimes not a DKIMException
            out.append("error(%s)" % type(e).__name__)
    return out

def private_key(path, alg):
    data = open(path, "rb").read()
    if alg == "ed25519-sha256":  # dkimpy takes the raw 32-byte seed, base64; ours is PKCS#8 PEM
        der = base64.b64decode(b"".join(l for l in data.splitlines() if not l.startswith(b"-----")))
        return base64.b64encode(der[-32:])
    return data

def sign(manifest):
    for line in open(manifest, encoding="utf-8"):
        path, sel, dom, keyfile, alg, hc, bc, length, ident = line.split()
        msg = open(path, "rb").read()
        sig = dkim.sign(msg, sel.encode(), dom.encode(), private_key(keyfile, alg),
                        identity=None if ident == "-" else ident.encode(),
                        canonicalize=(hc.encode(), bc.encode()), signature_algorithm=alg.encode(),
                        length=length == "1", linesep=b"\r\n")
        open(path, "wb").write(sig + msg)

def verify(keyfile, listfile):
    keys = load_keys(keyfile)
    dnsfunc = lambda name, timeout=5: keys.get(name.decode("ascii", "replace").lower())
    for path in open(listfile, encoding="utf-8").read().split():
        print("%s\t%s" % (path, " ".join(verdicts(open(path, "rb").read(), dnsfunc))))

def bench(server, listfile, passes=1):
    passes = int(passes)
    import dns.resolver
    host, _, port = server.partition(":")
    res = dns.resolver.Resolver(configure=False)
    res.nameservers = [host]
    res.port = int(port or 53)
    cache = {}
    def dnsfunc(name, timeout=5):
        if name not in cache:
            ans = res.resolve(name.decode(), "TXT")
            cache[name] = b"".join(b"".join(r.strings) for r in ans[:1])
        return cache[name]
    msgs = [open(p, "rb").read() for p in open(listfile, encoding="utf-8").read().split()]
    best = None
    for _ in range(passes):          # the best pass, as t2t's side takes it
        t0, c0 = time.monotonic(), time.process_time()
        ok = sum(1 for m in msgs if dkim.DKIM(m, minkey=1024).verify(dnsfunc=dnsfunc))
        t = (time.monotonic() - t0, time.process_time() - c0)
        best = t if best is None or t[1] < best[1] else best
    print("%d %d %.6f %.6f" % (len(msgs), ok, best[0], best[1]))

if __name__ == "__main__":
    {"sign": lambda a: sign(a[0]), "verify": lambda a: verify(a[0], a[1]),
     "bench": lambda a: bench(*a)}[sys.argv[1]](sys.argv[2:])
