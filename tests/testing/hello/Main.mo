// The backend of dfinity/icp-hello-world-motoko, whose integration test uses pocket-ic.
persistent actor {
  public query func greet(name : Text) : async Text {
    "Hello, " # name # "!"
  };
};
