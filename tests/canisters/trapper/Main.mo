import Error "mo:core/Error";
import Runtime "mo:core/Runtime";
persistent actor Trapper {
  var n : Nat = 0;
  public func set(v : Nat) : async () { n := v };
  public func set_then_trap(v : Nat) : async () { n := v; Runtime.trap("deliberate trap") };
  public query func get() : async Nat { n };
  public func reject_me() : async () { throw Error.reject("not today") };
};
