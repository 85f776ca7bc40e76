module github.com/echopilot/echopilot/platform

go 1.26

require github.com/echopilot/echopilot/gen v0.0.0

replace github.com/echopilot/echopilot/gen => ../gen
