persistent actor Counter {
  var count : Nat = 0;
  public func inc() : async Nat { count += 1; count };
  public func add(n : Nat) : async Nat { count += n; count };
  public query func get() : async Nat { count };
  public func fail_after_inc() : async () { count += 1; assert false };
  public func work(n : Nat) : async Nat {
    var acc = 0; var i = 0;
    while (i < n) { acc := (acc + i * i) % 1_000_003; i += 1 };
    acc
  };
};
