<#
.SYNOPSIS
  AvatarCam set-up for Windows: the "AvatarCam" virtual camera (Unity Capture registered under
  that name), a check for the virtual microphone (VB-Cable), and a startup shortcut for the tray.

.DESCRIPTION
  Unity Capture is a free DirectShow virtual camera (https://github.com/schellingb/UnityCapture);
  download its release, unpack it, and point -UnityCaptureDir at the folder holding
  UnityCaptureFilter64.dll (and UnityCaptureFilter32.dll for 32-bit apps). Registering a filter
  needs an elevated PowerShell. Without Unity Capture, AvatarCam falls back to OBS Virtual Camera.

  Safe to run again: registration and the shortcut are simply refreshed.

.EXAMPLE
  .\install.ps1 -UnityCaptureDir C:\Tools\UnityCapture\Install
  .\install.ps1 -UnityCaptureDir C:\Tools\UnityCapture\Install -DryRun
  .\install.ps1 -UnityCaptureDir C:\Tools\UnityCapture\Install -Uninstall
#>
[CmdletBinding()]
param(
  [string]$UnityCaptureDir = "",
  [string]$CameraName = "AvatarCam",
  [switch]$DryRun,
  [switch]$Uninstall,
  [switch]$NoStartup
)

$ErrorActionPreference = "Stop"
$StartupLink = Join-Path ([Environment]::GetFolderPath("Startup")) "AvatarCam.lnk"

function Say($text) { Write-Host "== $text" }
function Note($text) { Write-Host "   $text" }

function Invoke-Step([string]$Description, [scriptblock]$Action) {
  if ($DryRun) { Note "would $Description" } else { & $Action; Note $Description }
}

function Test-Admin {
  $id = [Security.Principal.WindowsIdentity]::GetCurrent()
  return (New-Object Security.Principal.WindowsPrincipal($id)).IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)
}

function Register-Filter([string]$Regsvr, [string]$Dll, [switch]$Remove) {
  if (-not (Test-Path $Regsvr) -or -not (Test-Path $Dll)) { return }
  $arguments = if ($Remove) { @("/s", "/u", "`"$Dll`"") } else { @("/s", "`"/i:UnityCaptureName=$CameraName`"", "`"$Dll`"") }
  $verb = if ($Remove) { "unregister" } else { "register" }
  Invoke-Step "$verb $Dll as '$CameraName'" {
    $p = Start-Process -FilePath $Regsvr -ArgumentList $arguments -Wait -PassThru -WindowStyle Hidden
    if ($p.ExitCode -ne 0) { throw "regsvr32 failed ($($p.ExitCode)) for $Dll" }
  }
}

function Set-Camera([switch]$Remove) {
  Say "virtual camera '$CameraName' (Unity Capture)"
  if (-not $UnityCaptureDir) {
    Note "no -UnityCaptureDir given: download Unity Capture (https://github.com/schellingb/UnityCapture/releases),"
    Note "unpack it and run this again with -UnityCaptureDir <folder with UnityCaptureFilter64.dll>."
    Note "Without it AvatarCam uses OBS Virtual Camera (start it once in OBS)."
    return
  }
  if (-not $DryRun -and -not (Test-Admin)) {
    throw "registering the camera needs an elevated PowerShell: right-click PowerShell, 'Run as administrator'"
  }
  $dll64 = Join-Path $UnityCaptureDir "UnityCaptureFilter64.dll"
  $dll32 = Join-Path $UnityCaptureDir "UnityCaptureFilter32.dll"
  if (-not (Test-Path $dll64)) { throw "$dll64 not found: point -UnityCaptureDir at Unity Capture's Install folder" }
  Register-Filter "$env:SystemRoot\System32\regsvr32.exe" $dll64 -Remove:$Remove
  Register-Filter "$env:SystemRoot\SysWOW64\regsvr32.exe" $dll32 -Remove:$Remove
}

function Test-Microphone {
  Say "virtual microphone"
  $cable = Get-CimInstance Win32_SoundDevice -ErrorAction SilentlyContinue | Where-Object { $_.Name -match "CABLE|AvatarCam" }
  if ($cable) {
    Note "found: $($cable[0].Name). In your video app choose 'CABLE Output' as the microphone."
  } else {
    Note "none found: install VB-Cable (https://vb-audio.com/Cable/); AvatarCam plays the delayed voice into"
    Note "'CABLE Input', and apps pick 'CABLE Output' as their microphone."
  }
}

function Set-Startup([switch]$Remove) {
  Say "start at login"
  if ($Remove) {
    if (Test-Path $StartupLink) { Invoke-Step "remove $StartupLink" { Remove-Item $StartupLink } }
    return
  }
  $exe = (Get-Command avatarcam -ErrorAction SilentlyContinue).Source
  if (-not $exe) { Note "avatarcam is not on PATH: pip install avatarcam first, then run this again"; return }
  Invoke-Step "create $StartupLink (avatarcam tray)" {
    $shell = New-Object -ComObject WScript.Shell
    $link = $shell.CreateShortcut($StartupLink)
    $link.TargetPath = $exe
    $link.Arguments = "tray"
    $link.WindowStyle = 7
    $link.Description = "AvatarCam talking-portrait virtual camera"
    $link.Save()
  }
}

if ($DryRun) { Say "dry run: nothing is changed" }
if ($Uninstall) {
  Set-Camera -Remove
  Set-Startup -Remove
  Note "VB-Cable and Unity Capture's files stay; remove them from Windows settings if nothing else uses them"
} else {
  Set-Camera
  Test-Microphone
  if (-not $NoStartup) { Set-Startup }
  Say "done: pick '$CameraName' as the camera in your video app"
}
