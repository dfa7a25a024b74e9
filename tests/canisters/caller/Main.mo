import Error "mo:core/Error";
persistent actor Caller {
  type Counter = actor {
    inc : () -> async Nat;
    fail_after_inc : () -> async ();
  };
  var calls : Nat = 0;
  var last_error : Text = "";
  public func call_inc(target : Text) : async Nat {
    calls += 1;
    let c : Counter = actor (target);
    await c.inc()
  };
  // callee traps: the error comes back as a reject (code 5) through the reject callback
  public func call_failing(target : Text) : async Text {
    calls += 1;
    let c : Counter = actor (target);
    try { await c.fail_after_inc(); "no error" } catch (e) {
      last_error := Error.message(e);
      "rejected"
    }
  };
  // the caller itself traps in the reply callback: its changes in the callback are rolled back
  public func call_then_trap(target : Text) : async Nat {
    calls += 1;
    let c : Counter = actor (target);
    let n = await c.inc();
    calls += 100;
    assert false;
    n
  };
  public query func get_calls() : async Nat { calls };
  public query func get_last_error() : async Text { last_error };
};
