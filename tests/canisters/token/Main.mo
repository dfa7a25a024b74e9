import Map "mo:core/Map";
import Principal "mo:core/Principal";
import Runtime "mo:core/Runtime";
persistent actor Token {
  let balances = Map.empty<Principal, Nat>();
  var minted : Nat = 0;
  public shared ({ caller }) func mint(amount : Nat) : async Nat {
    let b = switch (Map.get(balances, Principal.compare, caller)) { case null 0; case (?v) v };
    Map.add(balances, Principal.compare, caller, b + amount);
    minted += amount;
    b + amount
  };
  public shared ({ caller }) func transfer(to : Principal, amount : Nat) : async () {
    let b = switch (Map.get(balances, Principal.compare, caller)) { case null 0; case (?v) v };
    // debit first, then check: the trap must roll the debit back
    Map.add(balances, Principal.compare, caller, if (b >= amount) b - amount else 0);
    if (b < amount) Runtime.trap("insufficient funds");
    let t = switch (Map.get(balances, Principal.compare, to)) { case null 0; case (?v) v };
    Map.add(balances, Principal.compare, to, t + amount);
  };
  public query func balance_of(p : Principal) : async Nat {
    switch (Map.get(balances, Principal.compare, p)) { case null 0; case (?v) v }
  };
};
