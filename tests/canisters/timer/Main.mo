import Timer "mo:core/Timer";
persistent actor Ticker {
  var ticks : Nat = 0;
  transient let _t = Timer.recurringTimer<system>(#seconds 10, func () : async () { ticks += 1 });
  public query func get() : async Nat { ticks };
};
