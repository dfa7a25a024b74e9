// A programmable certified web site for the gateway's response-verification tests.
// The test computes the certification tree in Python and hands the canister its pages
// and the tree's root hash; the canister serves them with an IC-Certificate header made
// from its data certificate, so the test can make it tell the truth or lie.
import Prim "mo:⛔";

persistent actor Certified {
  type HeaderField = (Text, Text);
  type Request = {
    method : Text;
    url : Text;
    headers : [HeaderField];
    body : Blob;
    certificate_version : ?Nat16;
  };
  type Response = {
    status_code : Nat16;
    headers : [HeaderField];
    body : Blob;
    upgrade : ?Bool;
    streaming_strategy : ?None;
  };
  // tree: the CBOR witness to send; expr_path: CBOR for v2, none for v1;
  // certify: whether to add the IC-Certificate header at all.
  type Page = {
    url : Text;
    status : Nat16;
    headers : [HeaderField];
    body : Blob;
    tree : Blob;
    expr_path : ?Blob;
    certify : Bool;
  };

  var pages : [Page] = [];

  public func set(data : Blob, new_pages : [Page]) : async () {
    Prim.setCertifiedData(data);
    pages := new_pages;
  };

  func b64char(n : Nat) : Text {
    let code = if (n < 26) { 65 + n } else if (n < 52) { 97 + n - 26 } else if (n < 62) {
      48 + n - 52;
    } else if (n == 62) { 43 } else { 47 };
    Prim.charToText(Prim.nat32ToChar(Prim.natToNat32(code)));
  };

  func base64(b : Blob) : Text {
    let bytes = Prim.blobToArray(b);
    let n = bytes.size();
    var out = "";
    var i = 0;
    while (i < n) {
      let b0 = Prim.nat8ToNat(bytes[i]);
      let b1 = if (i + 1 < n) { Prim.nat8ToNat(bytes[i + 1]) } else { 0 };
      let b2 = if (i + 2 < n) { Prim.nat8ToNat(bytes[i + 2]) } else { 0 };
      out #= b64char(b0 / 4) # b64char((b0 % 4) * 16 + b1 / 16);
      out #= if (i + 1 < n) { b64char((b1 % 16) * 4 + b2 / 64) } else { "=" };
      out #= if (i + 2 < n) { b64char(b2 % 64) } else { "=" };
      i += 3;
    };
    out;
  };

  func certificate_header(p : Page) : Text {
    let cert = switch (Prim.getCertificate()) { case (?c) c; case null "" : Blob };
    let base = "certificate=:" # base64(cert) # ":, tree=:" # base64(p.tree) # ":";
    switch (p.expr_path) {
      case (?e) base # ", version=2, expr_path=:" # base64(e) # ":";
      case null base;
    };
  };

  public query func http_request(r : Request) : async Response {
    for (p in pages.vals()) {
      if (p.url == r.url) {
        let n = p.headers.size();
        let headers = if (p.certify) {
          let extra = ("IC-Certificate", certificate_header(p));
          Prim.Array_tabulate<HeaderField>(n + 1, func i = if (i < n) { p.headers[i] } else { extra });
        } else { p.headers };
        return { status_code = p.status; headers; body = p.body; upgrade = null; streaming_strategy = null };
      };
    };
    { status_code = 404; headers = []; body = Prim.encodeUtf8("no page " # r.url); upgrade = null; streaming_strategy = null };
  };
};
