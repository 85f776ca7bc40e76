package webhook

// DecoyKey lets webhook_test prove the decoy never verifies anything.
var DecoyKey = string(decoyKey)
