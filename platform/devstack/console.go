package devstack

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// ConsoleTicketTTL is how long make run's console sign-in link works.
const ConsoleTicketTTL = 10 * time.Minute

// ConsoleTicket writes a one-time console sign-in ticket for token into
// dir (0600) and returns the ticket, the file the gateway is to be given
// (ECHOPILOT_CONSOLE_DEV_TICKET_FILE) and the sign-in path. Local runs
// only: the gateway honors it once, for ConsoleTicketTTL.
func ConsoleTicket(dir, token string) (ticket, file, path string, err error) {
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return "", "", "", err
	}
	ticket = hex.EncodeToString(raw)
	body, err := json.Marshal(map[string]any{"ticket": ticket, "token": token, "expires": time.Now().Add(ConsoleTicketTTL).UTC()})
	if err != nil {
		return "", "", "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", "", fmt.Errorf("console ticket: %w", err)
	}
	file = filepath.Join(dir, "console-ticket.json")
	if err := os.WriteFile(file, body, 0o600); err != nil {
		return "", "", "", fmt.Errorf("console ticket: %w", err)
	}
	return ticket, file, "/console/login?ticket=" + ticket, nil
}
