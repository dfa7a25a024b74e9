persistent actor Composite {
  type Counter = actor { get : shared query () -> async Nat };
  type Self = actor { sum_twice : shared composite query Text -> async Nat };
  public composite query func sum_twice(target : Text) : async Nat {
    let c : Counter = actor (target);
    let a = await c.get();
    let b = await c.get();
    a + b
  };
  // calls itself: the IC rejects loops in the composite query call graph
  public composite query func loop_self(me : Text) : async Nat {
    let s : Self = actor (me);
    await s.sum_twice(me)
  };
};
