#!/bin/sh
echo "alerts gathered at $(date)"
