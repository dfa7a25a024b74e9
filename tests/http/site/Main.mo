// A small web site for the HTTP gateway tests: pages, 404, upgrade to update, streaming.
import Prim "mo:⛔";

persistent actor Site {
  type HeaderField = (Text, Text);
  type Token = { page : Nat; tag : Text };
  type StreamingCallbackResponse = { body : Blob; token : ?Token };
  type StreamingStrategy = {
    #Callback : { callback : shared query Token -> async StreamingCallbackResponse; token : Token };
  };
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
    streaming_strategy : ?StreamingStrategy;
  };

  var hits : Nat = 0;

  func page(status : Nat16, body : Text) : Response {
    {
      status_code = status;
      headers = [("Content-Type", "text/html"), ("X-Site", "icp")];
      body = Prim.encodeUtf8(body);
      upgrade = null;
      streaming_strategy = null;
    };
  };

  public query func http_request(r : Request) : async Response {
    if (r.url == "/stream") {
      return {
        status_code = 200;
        headers = [("Content-Type", "text/plain")];
        body = Prim.encodeUtf8("part0;");
        upgrade = null;
        streaming_strategy = ?#Callback { callback = http_streaming; token = { page = 1; tag = "t" } };
      };
    };
    if (r.url == "/hit") {
      return { page(200, "") with upgrade = ?true };
    };
    if (r.url == "/" or r.url == "/index.html") {
      return page(200, "<h1>hello from a canister</h1><p>" # r.method # " " # debug_show hits # "</p>");
    };
    if (r.url == "/echo") {
      return page(200, r.method # " " # debug_show (r.body.size()));
    };
    page(404, "not found: " # r.url);
  };

  public func http_request_update(r : Request) : async Response {
    hits += 1;
    page(200, "hits=" # debug_show hits);
  };

  public query func http_streaming(t : Token) : async StreamingCallbackResponse {
    if (t.page < 3) {
      { body = Prim.encodeUtf8("part" # debug_show t.page # ";"); token = ?{ t with page = t.page + 1 } };
    } else {
      { body = Prim.encodeUtf8("end"); token = null };
    };
  };
};
