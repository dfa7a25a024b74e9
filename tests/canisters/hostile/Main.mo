import Prim "mo:⛔";
persistent actor Hostile {
  var ok : Nat = 7;
  transient var hoard : [var [var Nat8]] = [var];
  public func set(v : Nat) : async () { ok := v };
  public query func get() : async Nat { ok };
  public func spin() : async () { ok := 999; var i = 0; while (true) { i += 1 } };
  public func bomb() : async () {
    ok := 999;
    var a : [var [var Nat8]] = [var];
    loop {
      let chunk = Prim.Array_init<Nat8>(16 * 1024 * 1024, 1);
      a := Prim.Array_tabulateVar<[var Nat8]>(a.size() + 1, func i = if (i < a.size()) a[i] else chunk);
      hoard := a;
    }
  };
};
