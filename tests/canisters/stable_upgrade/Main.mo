import Prim "mo:⛔";
persistent actor Store {
  var entries : [Text] = [];
  var upgrades : Nat = 0;
  public func push(t : Text) : async Nat { entries := Prim.Array_tabulate<Text>(entries.size() + 1, func i = if (i < entries.size()) entries[i] else t); entries.size() };
  public query func all() : async [Text] { entries };
  public query func upgrade_count() : async Nat { upgrades };
  system func postupgrade() { upgrades += 1 };
};
