// Cross-check with @dfinity/candid (the agent's Candid library).
// stdin: JSON {name: hex-of-our-encoding}; stdout: JSON {name: {own: hex, reencoded: hex}}
// where `own` is @dfinity/candid's encoding of the same values and `reencoded` is its
// decoding of our bytes encoded again.
const { IDL } = require("@dfinity/candid");
const { Principal } = require("@dfinity/principal");

const hex = (u8) => Buffer.from(u8).toString("hex");
const p = Principal.fromText("w7x7r-cok77-xa");

const List = IDL.Rec();
List.fill(IDL.Opt(IDL.Record({ head: IDL.Int, tail: List })));
const Result = IDL.Variant({ Ok: IDL.Nat, Err: IDL.Record({ code: IDL.Nat32, message: IDL.Text }) });

const CASES = {
  prims: [
    [IDL.Nat, IDL.Int, IDL.Nat8, IDL.Nat64, IDL.Int16, IDL.Float64, IDL.Bool, IDL.Text, IDL.Null],
    [2n ** 70n, -(2n ** 65n), 255, 2n ** 64n - 1n, -300, 0.1, true, "snow ☃", null],
  ],
  record: [
    [IDL.Record({ owner: IDL.Principal, subaccount: IDL.Opt(IDL.Vec(IDL.Nat8)), amount: IDL.Nat })],
    [{ owner: p, subaccount: [new Uint8Array([1, 2, 3])], amount: 5n }],
  ],
  variant: [[Result, Result], [{ Ok: 7n }, { Err: { code: 3, message: "no" } }]],
  tuple: [[IDL.Tuple(IDL.Nat, IDL.Text)], [[1n, "x"]]],
  vec: [[IDL.Vec(IDL.Opt(IDL.Int32))], [[[1], [], [-5]]]],
  nested_opt: [[IDL.Opt(IDL.Opt(IDL.Nat)), IDL.Opt(IDL.Opt(IDL.Nat))], [[[]], [[9n]]]],
  list: [[List], [[{ head: 1n, tail: [{ head: 2n, tail: [] }] }]]],
  refs: [
    [IDL.Func([IDL.Text], [IDL.Nat], ["query"]), IDL.Service({ m: IDL.Func([], [], []) })],
    [[p, "get"], p],
  ],
};

let input = "";
process.stdin.on("data", (d) => (input += d));
process.stdin.on("end", () => {
  const ours = JSON.parse(input);
  const out = {};
  for (const [name, [types, values]] of Object.entries(CASES)) {
    const own = hex(IDL.encode(types, values));
    let reencoded = null;
    try {
      const decoded = IDL.decode(types, new Uint8Array(Buffer.from(ours[name], "hex")));
      reencoded = hex(IDL.encode(types, decoded));
    } catch (e) {
      reencoded = "error: " + e.message;
    }
    out[name] = { own, reencoded };
  }
  process.stdout.write(JSON.stringify(out));
});
