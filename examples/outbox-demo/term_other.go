//go:build !unix

package main

import "os"

// terminalWidth returns 0: unknown, the console assumes 80 columns.
func terminalWidth(*os.File) int { return 0 }
