// Verify an IC certificate with @dfinity/agent (used by tests/state/test_certification.py).
// argv: certificate hex, root key DER hex, effective canister id (text), path labels (hex)...
const { Certificate, lookupResultToBuffer } = require("@dfinity/agent");
const { Principal } = require("@dfinity/principal");

const hex = (s) => Uint8Array.from(Buffer.from(s, "hex"));
(async () => {
  const [certHex, rootHex, canister, ...path] = process.argv.slice(2);
  try {
    const cert = await Certificate.create({
      certificate: hex(certHex),
      rootKey: hex(rootHex),
      canisterId: Principal.fromText(canister),
      disableTimeVerification: true,
    });
    const value = lookupResultToBuffer(cert.lookup_path(path.map(hex)));
    console.log(JSON.stringify({ ok: true, value: value ? Buffer.from(value).toString("hex") : null }));
  } catch (e) {
    console.log(JSON.stringify({ ok: false, error: String(e && e.message ? e.message : e) }));
  }
})();
